"""The importable library: ``convbench.correlate(...)`` and friends.

Each call builds a spec (which validates every argument before any work), picks a
candidate (``algorithm=`` or the default choice of convbench.choose), runs it on the
caller's arrays and returns the caller's kind of array (numpy in, numpy out; torch in,
torch out on the same device).
"""
from __future__ import annotations

from convbench import plans


def apply(op: str, arrays: tuple, names: tuple, kwargs: dict, algorithm: str | None = None,
          accuracy: str = "elementwise"):
    """Run ``op`` on ``arrays`` with keyword arguments ``kwargs`` (a dict) through the plan
    cache: validate and choose once per kind of call, check the values every call.

    The default choice reads the values (convbench.values): NaN/Inf, exact integer sums,
    and, for ``accuracy="elementwise"``, the elementwise contract. A named algorithm is
    the caller's choice of error model, but it is never given values it declares it
    cannot handle (NaN/Inf placement, exact integers)."""
    from convbench.ops import get_op

    record = get_op(op)
    unknown = set(kwargs) - {k for k, _ in record.defaults}
    if unknown:
        raise TypeError(f"{op}() got unexpected keyword argument(s) {sorted(unknown)}; "
                        f"accepted: {[k for k, _ in record.defaults]}")
    params = tuple(kwargs.get(k, default) for k, default in record.defaults)
    return plans.cached(op, arrays, names, params, algorithm, accuracy)


def plan(op: str, *arrays, shapes=None, dtypes=None, library: str = "numpy",
         device: str = "cpu", algorithm: str | None = None, accuracy: str = "elementwise",
         **kwargs):
    """A reusable plan of ``op``: validated and chosen once, run by calling it.

    Give example arrays (``plan("correlate", x, w, border="wrap")``: their shapes, dtypes,
    array library, device and the kernel's values decide), or ``shapes=`` and ``dtypes=``
    (one name for all, or one per array) with ``library=`` and ``device=``. The op's
    keywords, ``algorithm`` and ``accuracy`` mean what they mean in the op's function.
    ``p(x, w)`` runs it on arrays of that description; ``p.explain()`` says which
    candidate runs, why, its error model, what it keeps and what each call checks."""
    if shapes is not None and arrays:
        raise TypeError("plan() takes example arrays or shapes=, not both")
    return plans.make(op, arrays, kwargs, algorithm, accuracy, shapes=shapes, dtypes=dtypes,
                      library=library, device=device)


_X, _XW, _XWB = ("x",), ("x", "w"), ("x", "w", "bias")
# ops without an accuracy= keyword: every candidate of theirs is held to its own model
_DIRECT = "normwise"


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None,
              algorithm=None, accuracy="elementwise"):
    """Correlate ``x`` with ``w`` (no kernel flip): ``y[i] = sum_j w[j] * xp[i + j]``.

    x, w: arrays of the same rank (numpy, or torch tensors on any device).
    border: constant (with cval), edge, symmetric, reflect, wrap (numpy.pad's names;
        aliases such as 'nearest', 'mirror', 'circular' accepted).
    padding: 'same' (output shape = x's, anchor at k//2 + origin, as scipy.ndimage),
        'valid' or 'full' (scipy.signal).
    out_dtype: None gives a floating result (integer images never wrap); an integer dtype
        rounds half to even and saturates.
    algorithm: a candidate name from ``convbench list`` (default: convbench.choose's rule).
    accuracy: 'elementwise' (default): the result is within 64x the elementwise error bound
        of a direct sum (gamma_K(u) * (|x| (*) |w|)), NaN/Inf placed as IEEE arithmetic
        places them, integer sums exact; FFT algorithms run only when a per-call check of
        the values certifies them. 'normwise' lets the default take any verified algorithm
        under its own stated bound (FFT: c u log2(L) ||x||_2 ||w||_2), the fastest route
        for large kernels on well-scaled data. See convbench.values.
    """
    return plans.cached("correlate", (x, w), _XW, (border, cval, padding, origin, out_dtype),
                        algorithm, accuracy)


def convolve(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None,
             algorithm=None, accuracy="elementwise"):
    """Convolve ``x`` with ``w`` (kernel reversed): equals scipy.ndimage.convolve for every
    border after name translation, even kernels included. Arguments as ``correlate``."""
    return plans.cached("convolve", (x, w), _XW, (border, cval, padding, origin, out_dtype),
                        algorithm, accuracy)


def conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, border="constant",
         cval=0.0, algorithm=None):
    """Layer-form cross-correlation, torch.nn.functional.conv{1,2,3}d's meanings.

    x: (N, C, *spatial) with 1-3 spatial axes; w: (O, C/groups, *k); bias: (O,) or None.
    padding: int, per-axis tuple, per-side pairs ((lo, hi), ...), 'valid', or 'same'
        ('same' works with stride: output ceil(in/stride), odd extra on the high side).
    border: how the padded region is filled (constant with cval, edge, symmetric, reflect,
        wrap), which torch offers only partly.
    """
    return plans.cached("conv", (x, w, bias), _XWB,
                        (stride, padding, dilation, groups, border, cval), algorithm, _DIRECT)


def conv_transpose(x, w, bias=None, *, stride=1, padding=0, output_padding=0, dilation=1,
                   groups=1, algorithm=None):
    """torch.nn.functional.conv_transpose{1,2,3}d: x (N, C, *s), w (C, O/groups, *k)."""
    return plans.cached("conv_transpose", (x, w, bias), _XWB,
                        (stride, padding, output_padding, dilation, groups), algorithm, _DIRECT)


def conv_grad_input(dy, w, input_shape, *, stride=1, padding=0, dilation=1, groups=1,
                    border="constant", cval=0.0, algorithm=None):
    """Gradient of sum(conv(x, w) * dy) with respect to x (border gradients folded back)."""
    return plans.cached("conv_grad_input", (dy, w), ("dy", "w"),
                        (input_shape, stride, padding, dilation, groups, border, cval),
                        algorithm, _DIRECT)


def conv_grad_weight(x, dy, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                     border="constant", cval=0.0, algorithm=None):
    """Gradient of sum(conv(x, w) * dy) with respect to w."""
    return plans.cached("conv_grad_weight", (x, dy), ("x", "dy"),
                        (weight_shape, stride, padding, dilation, groups, border, cval),
                        algorithm, _DIRECT)


def conv_grad_bias(dy, *, algorithm=None):
    """Gradient of sum(conv(x, w, bias) * dy) with respect to bias: dy summed over N and space."""
    return plans.cached("conv_grad_bias", (dy,), ("dy",), (), algorithm, _DIRECT)


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
             algorithm=None):
    """torch's max_pool{1,2,3}d on (N, C, *spatial); ties keep the first maximum."""
    return plans.cached("max_pool", (x,), _X, (kernel_size, stride, padding, dilation, ceil_mode),
                        algorithm, _DIRECT)


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None, *, algorithm=None):
    """torch's avg_pool{1,2,3}d on (N, C, *spatial)."""
    return plans.cached("avg_pool", (x,), _X, (kernel_size, stride, padding, ceil_mode,
                                              count_include_pad, divisor_override),
                        algorithm, _DIRECT)


def lp_pool(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, algorithm=None):
    """torch's lp_pool{1,2,3}d: (sum over the window of x**p) ** (1/p)."""
    return plans.cached("lp_pool", (x,), _X, (norm_type, kernel_size, stride, ceil_mode),
                        algorithm, _DIRECT)


def gaussian(x, sigma, *, border="constant", cval=0.0, truncate=4.0, out_dtype=None,
             algorithm=None, accuracy="elementwise"):
    """Gaussian filter: correlate ``x`` with the sampled, truncated, normalised Gaussian
    (scipy.ndimage's kernel, radius int(truncate * sigma + 0.5) per axis); output shape = x's.

    sigma: one number, or one per axis of x (0 leaves that axis untouched); finite, >= 0.
    border: as ``correlate`` (scipy.ndimage.gaussian_filter's default 'reflect' is our
        'symmetric'; ours is 'constant', like every op here).
    out_dtype: None gives a floating result (integer images never wrap); an integer dtype
        rounds half to even and saturates.
    algorithm: a candidate name from ``convbench list``. 'iir_numba' is a recursive
        Gaussian whose cost does not grow with sigma, an approximation verified under its
        stated bound |error| <= 3e-3 * max|x| (typically 1e-4 of the range).
    accuracy: as ``correlate``: by default the recursive Gaussian runs only where a
        per-call check certifies it within the elementwise contract (large sigma on
        images without deep dark regions); 'normwise' takes it whenever it is fastest.
    """
    return plans.cached("gaussian", (x,), _X, (sigma, border, cval, truncate, out_dtype),
                        algorithm, accuracy)


_BATCH_NORM = ("x", "running_mean", "running_var", "weight", "bias")


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, algorithm=None):
    """torch.nn.functional.batch_norm: normalise each channel of x (N, C, *spatial), 0-3
    spatial axes, and return y; in training, update running_mean and running_var in place.

    training=True: the batch's per-channel mean and biased variance normalise,
        y = (x - mean) / sqrt(var + eps) * weight + bias, and the running statistics
        become (1 - momentum) * running + momentum * batch (the variance unbiased,
        n / (n - 1)); they may be None (then nothing is updated).
    training=False: running_mean and running_var (required) normalise.
    weight, bias: (C,) or None (ones, zeros). momentum: a float (torch's layer passes
        1 / num_batches_tracked for its cumulative average; so does convbench.nn).
    The gradient (dx, dweight, dbias) is the op ``batch_norm_grad``:
    ``convbench.api.apply("batch_norm_grad", (dy, x, running_mean, running_var, weight),
    ("dy", "x", "running_mean", "running_var", "weight"), {"training": ..., "eps": ...})``.
    """
    from convbench.ops.batch_norm import fill_arrays, updatable

    if training:
        for name, a in (("running_mean", running_mean), ("running_var", running_var)):
            updatable(a, name)
    arrays = fill_arrays(x, running_mean, running_var, weight, bias, training)
    y, new_mean, new_var = plans.cached("batch_norm", arrays, _BATCH_NORM,
                                        (training, momentum, eps), algorithm, _DIRECT)
    if training:
        for given, new in ((running_mean, new_mean), (running_var, new_var)):
            if given is not None and new is not given:
                given[...] = new
    return y
