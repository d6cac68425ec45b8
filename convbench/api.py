"""The importable library: ``convbench.correlate(...)`` and friends.

Each call builds a spec (which validates every argument before any work), picks a
candidate (``algorithm=`` or the default choice of convbench.choose), runs it on the
caller's arrays and returns the caller's kind of array (numpy in, numpy out; torch in,
torch out on the same device).
"""
from __future__ import annotations

import numpy as np

from convbench import arrays as xp
from convbench import registry, values
from convbench.choose import choose
from convbench.spec import Spec


def _as_arrays(arrays, names):
    for a, name in zip(arrays, names):
        if a is None and name != "bias":
            raise TypeError(f"{name} must be an array, got None")
    lib = xp.common_library(arrays, names)
    if lib == "numpy":
        arrays = tuple(None if a is None else xp.as_numpy_argument(a, name)
                       for a, name in zip(arrays, names))
    return lib, arrays


def apply(op: str, arrays: tuple, names: tuple, kwargs: dict, algorithm: str | None = None,
          accuracy: str = "elementwise"):
    """Validate, choose a candidate, run it; the result in the caller's array library.

    The default choice reads the values (convbench.values): NaN/Inf, exact integer sums,
    and, for ``accuracy="elementwise"``, the elementwise contract. A named algorithm is
    the caller's choice of error model, but it is never given values it declares it
    cannot handle (NaN/Inf placement, exact integers)."""
    values.check_accuracy(accuracy)
    lib, arrays = _as_arrays(arrays, names)
    present = [a for a in arrays if a is not None]
    spec = Spec.make(op, [tuple(a.shape) for a in present], [xp.dtype_name(a) for a in present],
                     **kwargs)
    spec.check_memory(present[0])
    found = values.facts(spec, present)
    _refuse_nonfinite_into_integers(spec, found)
    if algorithm is None:
        candidate = choose(spec, _choice_library(lib, present[0]), arrays=present,
                           accuracy=accuracy, found=found)
    else:
        candidate = _named_candidate(op, algorithm)
        reason = (candidate.unavailable() or candidate.supports(spec)
                  or values.ineligible(candidate, spec, found))
        if reason:
            raise ValueError(f"algorithm={algorithm!r} cannot run this call: {reason}")
    if lib == "numpy" or candidate.module.LIBRARY == lib:
        native = tuple(candidate.to_native(a) if lib == "numpy" else a for a in present)
        out = spec.operation.call(candidate.function(), native, spec)
    else:  # e.g. torch tensors into a numpy-based algorithm: round trip through numpy
        native = tuple(candidate.to_native(xp.to_numpy(a)) for a in present)
        out = spec.operation.call(candidate.function(), native, spec)
    return _to_caller(out, lib, present[0])


def _named_candidate(op: str, algorithm):
    if not isinstance(algorithm, str):
        raise TypeError(f"algorithm must be a candidate name (a str, see `convbench list`) or "
                        f"None, got {algorithm!r}")
    try:
        return registry.get(op, algorithm)
    except ValueError as exc:
        raise ValueError(f"algorithm={algorithm!r}: {exc}") from None


def _refuse_nonfinite_into_integers(spec, found) -> None:
    """An integer out_dtype cannot hold NaN (0 * Inf and Inf - Inf make NaN too): refuse
    instead of a silent 0."""
    out = spec.kwargs.get("out_dtype")
    if not found.finite and out is not None and np.dtype(out).kind in "iu":
        raise ValueError(f"the arrays hold NaN or Inf, which out_dtype={out} cannot represent; "
                         "pass a floating out_dtype (or None), or replace them first")


def _choice_library(lib: str, template) -> str:
    """CPU tensors convert to numpy without a copy, so they get the numpy choice; tensors
    on a GPU stay there."""
    if lib == "torch" and template.device.type == "cpu":
        return "numpy"
    return lib


def _to_caller(out, lib: str, template):
    if xp.library_of(out) == lib:
        return out
    return xp.like(xp.to_numpy(out), template)


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
    return apply("correlate", (x, w), ("x", "w"),
                 dict(border=border, cval=cval, padding=padding, origin=origin, out_dtype=out_dtype),
                 algorithm, accuracy)


def convolve(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None,
             algorithm=None, accuracy="elementwise"):
    """Convolve ``x`` with ``w`` (kernel reversed): equals scipy.ndimage.convolve for every
    border after name translation, even kernels included. Arguments as ``correlate``."""
    return apply("convolve", (x, w), ("x", "w"),
                 dict(border=border, cval=cval, padding=padding, origin=origin, out_dtype=out_dtype),
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
    return apply("conv", (x, w, bias), ("x", "w", "bias"),
                 dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                      border=border, cval=cval), algorithm)


def conv_transpose(x, w, bias=None, *, stride=1, padding=0, output_padding=0, dilation=1,
                   groups=1, algorithm=None):
    """torch.nn.functional.conv_transpose{1,2,3}d: x (N, C, *s), w (C, O/groups, *k)."""
    return apply("conv_transpose", (x, w, bias), ("x", "w", "bias"),
                 dict(stride=stride, padding=padding, output_padding=output_padding,
                      dilation=dilation, groups=groups), algorithm)


def conv_grad_input(dy, w, input_shape, *, stride=1, padding=0, dilation=1, groups=1,
                    border="constant", cval=0.0, algorithm=None):
    """Gradient of sum(conv(x, w) * dy) with respect to x (border gradients folded back)."""
    return apply("conv_grad_input", (dy, w), ("dy", "w"),
                 dict(input_shape=input_shape, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, border=border, cval=cval), algorithm)


def conv_grad_weight(x, dy, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                     border="constant", cval=0.0, algorithm=None):
    """Gradient of sum(conv(x, w) * dy) with respect to w."""
    return apply("conv_grad_weight", (x, dy), ("x", "dy"),
                 dict(weight_shape=weight_shape, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, border=border, cval=cval), algorithm)


def conv_grad_bias(dy, *, algorithm=None):
    """Gradient of sum(conv(x, w, bias) * dy) with respect to bias: dy summed over N and space."""
    return apply("conv_grad_bias", (dy,), ("dy",), {}, algorithm)


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
             algorithm=None):
    """torch's max_pool{1,2,3}d on (N, C, *spatial); ties keep the first maximum."""
    return apply("max_pool", (x,), ("x",),
                 dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                      ceil_mode=ceil_mode), algorithm)


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None, *, algorithm=None):
    """torch's avg_pool{1,2,3}d on (N, C, *spatial)."""
    return apply("avg_pool", (x,), ("x",),
                 dict(kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                      count_include_pad=count_include_pad, divisor_override=divisor_override),
                 algorithm)


def lp_pool(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, algorithm=None):
    """torch's lp_pool{1,2,3}d: (sum over the window of x**p) ** (1/p)."""
    return apply("lp_pool", (x,), ("x",),
                 dict(norm_type=norm_type, kernel_size=kernel_size, stride=stride,
                      ceil_mode=ceil_mode), algorithm)


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
    return apply("gaussian", (x,), ("x",),
                 dict(sigma=sigma, border=border, cval=cval, truncate=truncate,
                      out_dtype=out_dtype), algorithm, accuracy)
