"""Layer-form convolution oracles: ``conv``, ``conv_transpose`` and the gradients of ``conv``.

torch.nn.functional's meanings, written out as loops. ``x`` is ``(N, C, *spatial)`` with 1, 2 or
3 spatial axes, ``w`` is ``(O, C/groups, *kernel)``. ``conv`` is cross-correlation (the kernel is
not reversed). With ``xp`` the input extended on every spatial axis by the per-side padding,
``Cg = C/groups`` input and ``Og = O/groups`` output channels per group and ``g = o // Og`` the
group of output channel ``o``::

    y[n, o, p] = bias[o] + sum_{c < Cg, r} w[o, c, r] * xp[n, g*Cg + c, p*stride + r*dilation]

where ``p``, ``r``, ``stride`` and ``dilation`` are per-axis tuples and the products and sums run
over every spatial axis at once. The padded samples follow ``border`` (numpy.pad's names, aliases
via ``refimpl.pad.canonical_border``; see ``refimpl.pad``), ``cval`` for ``constant``; padding
wider than the input repeats the rule as numpy.pad does.

Every output element is the correctly rounded sum (``math.fsum``) of its float64 products and the
bias, so the oracle does not depend on summation order: ``conv`` and the pointwise ``conv_at``
agree exactly (as do ``conv_transpose_at``, ``conv_grad_input_at`` and ``conv_grad_weight_at``
with their whole oracles), and so do ``conv_transpose`` and ``conv_grad_input`` with a zero
border. ``validate`` and ``validate_transpose`` check a call on shapes alone, before any work.
Results are float64 (complex128 when an input is complex). Shapes and padding come from
``refimpl.geometry``; nothing here derives them again.
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from refimpl.geometry import (as_tuple, conv_output_shape, layer_padding, positive_tuple,
                              transpose_output_shape)
from refimpl.pad import canonical_border, pad, source_index

__all__ = ["conv", "conv_at", "conv_transpose", "conv_transpose_at", "conv_grad_input",
           "conv_grad_input_at", "conv_grad_weight", "conv_grad_weight_at", "conv_grad_bias",
           "validate", "validate_transpose"]


# ---------------------------------------------------------------------------------------
# Validation, shared by every function here. All of it runs before any arithmetic.
# ---------------------------------------------------------------------------------------

class _Layer(NamedTuple):
    """The resolved arguments of one ``conv`` call."""
    batch: int
    in_channels: int
    out_channels: int
    groups: int
    in_spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    out_spatial: tuple[int, ...]
    border: str
    cval: float

    @property
    def in_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def out_per_group(self) -> int:
        return self.out_channels // self.groups

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.batch, self.out_channels) + self.out_spatial


def _array(a, name: str) -> np.ndarray:
    """``a`` as an array of real or complex numbers with no zero-length axis (not copied)."""
    a = np.asarray(a)
    if a.dtype.kind not in "iufc":
        raise TypeError(f"{name} must hold real or complex numbers, got dtype {a.dtype}")
    if a.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {a.shape}")
    return a


def _shape(value, name: str) -> tuple[int, ...]:
    """A shape argument (``input_shape``, ``weight_shape``): a sequence of ints >= 1."""
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of ints, got {value!r}") from None
    if any(v < 1 for v in shape):
        raise ValueError(f"{name} must not be empty (every entry >= 1), got {shape}")
    return shape


def _float(a: np.ndarray) -> np.ndarray:
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def _check_ranks(x_shape, w_shape, x_name: str, w_name: str) -> None:
    if not 3 <= len(x_shape) <= 5:
        raise ValueError(f"{x_name} must have 3 to 5 dimensions (N, C, *spatial with 1-3 "
                         f"spatial axes), got shape {tuple(x_shape)}")
    if len(w_shape) != len(x_shape):
        raise ValueError(f"{w_name} must have the rank of {x_name} ({len(x_shape)}), "
                         f"got shape {tuple(w_shape)}")


def _check_groups(groups) -> int:
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral):
        raise TypeError(f"groups must be an int >= 1, got {groups!r}")
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    return int(groups)


def _check_bias(bias, out_channels: int) -> np.ndarray | None:
    if bias is None:
        return None
    bias = _array(bias, "bias")
    if bias.shape != (out_channels,):
        raise ValueError(f"bias must have shape (O,) = ({out_channels},), got {bias.shape}")
    return _float(bias)


def _layer(x_shape, w_shape, *, stride, padding, dilation, groups, border, cval,
           x_name: str = "x", w_name: str = "w") -> _Layer:
    """Check one ``conv`` call's shapes and arguments and resolve them (see ``_Layer``)."""
    _check_ranks(x_shape, w_shape, x_name, w_name)
    groups = _check_groups(groups)
    batch, channels, *in_spatial = (int(v) for v in x_shape)
    out_channels, per_group, *kernel = (int(v) for v in w_shape)
    if channels % groups:
        raise ValueError(f"groups={groups} must divide the channels C={channels} of {x_name}")
    if out_channels % groups:
        raise ValueError(f"groups={groups} must divide the output channels O={out_channels} "
                         f"({w_name}.shape[0])")
    if per_group * groups != channels:
        raise ValueError(f"{w_name}.shape[1] * groups must equal the channels C of {x_name}: "
                         f"{per_group} * {groups} != {channels}")
    n = len(in_spatial)
    stride = positive_tuple(stride, n, "stride")
    dilation = positive_tuple(dilation, n, "dilation")
    border = canonical_border(border)
    if isinstance(cval, bool) or not isinstance(cval, numbers.Real):
        raise TypeError(f"cval must be a real number, got {cval!r}")
    if not math.isfinite(cval):
        raise ValueError(f"cval must be finite, got {cval!r}")
    pads = layer_padding(in_spatial, kernel, padding, stride, dilation)
    try:
        out_spatial = conv_output_shape(in_spatial, kernel, pads, stride, dilation)
    except ValueError as err:
        raise ValueError(f"kernel {w_name} (spatial shape {tuple(kernel)}) does not fit the "
                         f"padded input {x_name} (spatial shape {tuple(in_spatial)}, padding "
                         f"{pads}): {err}") from None
    return _Layer(batch, channels, out_channels, groups, tuple(in_spatial), tuple(kernel),
                  stride, dilation, pads, out_spatial, border, float(cval))


def validate(x_shape, w_shape, *, stride=1, padding=0, dilation=1, groups=1,
             border="constant", cval=0.0, x_name: str = "x", w_name: str = "w") -> _Layer:
    """Check one ``conv`` call on shapes alone (no arrays, no arithmetic) and resolve it.

    Raises the errors ``conv`` raises, naming the argument; returns the resolved call: a
    named tuple with ``pads`` (per-side pairs), ``out_spatial``, ``out_shape``, ``stride``,
    ``dilation``, ``groups``, ``border`` (canonical), ``cval``, ... The gradients check
    their shape arguments the same way (``x_name="input_shape"`` or ``w_name="weight_shape"``).

    >>> layer = validate((1, 4, 6), (2, 4, 3), padding="same", stride=2, border="mirror")
    >>> layer.pads, layer.out_shape, layer.border
    (((0, 1),), (1, 2, 3), 'reflect')
    """
    for name, shape in ((x_name, x_shape), (w_name, w_shape)):
        if any(int(v) < 1 for v in shape):
            raise ValueError(f"{name} must not be empty, got shape {tuple(shape)}")
    return _layer(x_shape, w_shape, stride=stride, padding=padding, dilation=dilation,
                  groups=groups, border=border, cval=cval, x_name=x_name, w_name=w_name)


def validate_transpose(x_shape, w_shape, *, stride=1, padding=0, output_padding=0, dilation=1,
                       groups=1) -> tuple[int, ...]:
    """Check one ``conv_transpose`` call on shapes alone; return its output shape.

    >>> validate_transpose((1, 4, 5), (4, 3, 3), stride=2, padding=1, output_padding=1, groups=2)
    (1, 6, 10)
    """
    _check_ranks(x_shape, w_shape, "x", "w")
    for name, shape in (("x", x_shape), ("w", w_shape)):
        if any(int(v) < 1 for v in shape):
            raise ValueError(f"{name} must not be empty, got shape {tuple(shape)}")
    groups = _check_groups(groups)
    batch, channels, *in_spatial = (int(v) for v in x_shape)
    w_channels, og, *kernel = (int(v) for v in w_shape)
    if channels % groups:
        raise ValueError(f"groups={groups} must divide the channels C={channels} of x")
    if w_channels != channels:
        raise ValueError(f"w.shape[0] must equal the channels C of x (conv_transpose's w is "
                         f"(C, O/groups, *kernel)): {w_channels} != {channels}")
    n_axes = len(in_spatial)
    if isinstance(padding, str):
        raise TypeError(f"padding of conv_transpose must be an int or a tuple of "
                        f"{n_axes} ints, got {padding!r}")
    stride = positive_tuple(stride, n_axes, "stride")
    dilation = positive_tuple(dilation, n_axes, "dilation")
    padding = as_tuple(padding, n_axes, "padding")
    out_spatial = transpose_output_shape(in_spatial, kernel, stride, padding, output_padding,
                                         dilation)
    return (batch, og * groups) + tuple(out_spatial)


def _check_dy(dy, layer: _Layer) -> np.ndarray:
    dy = _array(dy, "dy")
    if dy.shape != layer.out_shape:
        raise ValueError(f"dy must have the shape of conv's output, {layer.out_shape}, "
                         f"got {dy.shape}")
    return _float(dy)


def _exact_sum(terms, extra=0.0):
    """The correctly rounded sum of ``terms`` and ``extra`` (real and imaginary parts apart);
    with a NaN or an infinity among them, IEEE's answer (NaN, or Inf - Inf = NaN).

    >>> _exact_sum([1e16, 1.0, -1e16]), _exact_sum([np.inf, 1.0]), _exact_sum([np.inf, -np.inf])
    (1.0, inf, nan)
    """
    terms = np.asarray(terms).ravel()
    if np.iscomplexobj(terms) or isinstance(extra, complex):
        return complex(_exact_sum(terms.real, complex(extra).real),
                       _exact_sum(terms.imag, complex(extra).imag))
    values = terms.tolist() + [float(extra)]
    if not all(math.isfinite(v) for v in values):
        return float(np.sum(values))
    return math.fsum(values)


def _result_dtype(*arrays) -> type:
    return np.complex128 if any(np.iscomplexobj(a) for a in arrays if a is not None) else np.float64


def _taps(start, count, step) -> tuple[slice, ...]:
    """Per axis, the ``count`` positions ``start, start + step, ...`` as a slice."""
    return tuple(slice(b, b + s * (k - 1) + 1, s) for b, k, s in zip(start, count, step))


# ---------------------------------------------------------------------------------------
# The oracles
# ---------------------------------------------------------------------------------------

def conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, border="constant",
         cval=0.0) -> np.ndarray:
    """Layer-form cross-correlation, torch.nn.functional.conv{1,2,3}d's meaning, any border.

    ``y[n, o, p] = bias[o] + sum_{c < Cg, r} w[o, c, r] * xp[n, g*Cg + c, p*stride + r*dilation]``

    with ``xp`` = ``x`` extended by ``border`` (numpy.pad's names; ``cval`` for ``constant``),
    ``Cg = C/groups``, ``g = o // (O/groups)``. ``padding`` is an int, a per-axis tuple,
    per-side pairs ``((lo, hi), ...)``, ``"valid"``, or ``"same"`` (output ``ceil(in/stride)``,
    the odd extra padding on the high side, stride allowed). Output spatial size per axis:
    ``(in + lo + hi - dilation*(k-1) - 1) // stride + 1``.

    >>> x = np.array([[[1., 2., 3., 4., 5.]]])                  # (N, C, W) = (1, 1, 5)
    >>> w = np.array([[[1., 0., -1.]]])                         # (O, C, k) = (1, 1, 3)
    >>> conv(x, w, padding=1)                                   # xp = 0 1 2 3 4 5 0
    array([[[-2., -2., -2., -2.,  4.]]])
    >>> conv(x, w, padding=1, border="reflect")                 # xp = 2 1 2 3 4 5 4
    array([[[ 0., -2., -2., -2.,  0.]]])
    >>> conv(x, w, padding="same", stride=2, bias=[10.])        # ceil(5/2) = 3 outputs
    array([[[ 8.,  8., 14.]]])
    >>> conv(x, w, dilation=2)                                  # x[p] - x[p+4]
    array([[[-4.]]])
    """
    x, w = _array(x, "x"), _array(w, "w")
    layer = _layer(x.shape, w.shape, stride=stride, padding=padding, dilation=dilation,
                   groups=groups, border=border, cval=cval)
    bias = _check_bias(bias, layer.out_channels)
    xp = pad(x, ((0, 0), (0, 0)) + layer.pads, layer.border, layer.cval)
    w = _float(w)
    cg, og = layer.in_per_group, layer.out_per_group
    y = np.empty(layer.out_shape, dtype=_result_dtype(x, w, bias))
    for n, o, *p in np.ndindex(*y.shape):
        g = o // og
        first = tuple(pa * s for pa, s in zip(p, layer.stride))
        # window[c, r] = xp[n, g*Cg + c, p*stride + r*dilation]
        window = xp[(n, slice(g * cg, (g + 1) * cg)) + _taps(first, layer.kernel, layer.dilation)]
        y[(n, o) + tuple(p)] = _exact_sum(w[o] * window, 0.0 if bias is None else bias[o].item())
    return y


def conv_at(x, w, bias, index, *, stride=1, padding=0, dilation=1, groups=1,
            border="constant", cval=0.0):
    """One element ``y[index]`` of ``conv(x, w, bias, ...)``, without building the output.

    ``index`` is ``(n, o, *p)`` (negative entries count from the end, as in numpy). Reads only
    the ``C/groups * prod(kernel)`` input samples it needs, each through
    ``refimpl.pad.source_index`` (no padded copy of ``x``), so it can check outputs too large
    to compute whole. Same formula and same rounding as ``conv``: the results are identical.

    >>> x = np.array([[[1., 2., 3., 4., 5.]]])
    >>> w = np.array([[[1., 0., -1.]]])
    >>> print(conv_at(x, w, None, (0, 0, 4), padding=1))        # x[3] - 0
    4.0
    >>> print(conv_at(x, w, None, (0, 0, -1), padding=1, border="wrap"))   # x[3] - x[0]
    3.0
    """
    x, w = _array(x, "x"), _array(w, "w")
    layer = _layer(x.shape, w.shape, stride=stride, padding=padding, dilation=dilation,
                   groups=groups, border=border, cval=cval)
    bias = _check_bias(bias, layer.out_channels)
    n, o, *p = _check_index(index, layer.out_shape)
    cg, g = layer.in_per_group, o // layer.out_per_group
    scalar = complex if _result_dtype(x, w, bias) == np.complex128 else float
    terms = []
    for c in range(cg):
        for r in np.ndindex(*layer.kernel):
            src = tuple(source_index(pa * s + ra * d - lo, size, layer.border)
                        for pa, ra, s, d, (lo, _), size
                        in zip(p, r, layer.stride, layer.dilation, layer.pads, layer.in_spatial))
            value = layer.cval if None in src else scalar(x[(n, g * cg + c) + src])
            terms.append(scalar(w[(o, c) + r]) * value)
    total = _exact_sum(np.array(terms), 0.0 if bias is None else bias[o].item())
    return np.complex128(total) if scalar is complex else np.float64(total)


def _check_index(index, shape) -> tuple[int, ...]:
    try:
        items = tuple(index)
    except TypeError:
        raise TypeError(f"index must be a tuple (n, o, *p) of {len(shape)} ints, "
                        f"got {index!r}") from None
    if len(items) != len(shape) or any(isinstance(i, bool) or not isinstance(i, numbers.Integral)
                                       for i in items):
        raise TypeError(f"index must be a tuple (n, o, *p) of {len(shape)} ints, got {index!r}")
    if any(not -size <= i < size for i, size in zip(items, shape)):
        raise IndexError(f"index {index!r} is out of range for the output shape {shape}")
    return tuple(int(i) % size for i, size in zip(items, shape))


def conv_transpose(x, w, bias=None, *, stride=1, padding=0, output_padding=0, dilation=1,
                   groups=1) -> np.ndarray:
    """Transposed convolution, torch.nn.functional.conv_transpose{1,2,3}d's meaning.

    ``x`` is ``(N, C, *spatial)``, ``w`` is ``(C, O/groups, *kernel)``; ``padding`` (int or
    per-axis tuple) removes samples from both ends, ``output_padding`` adds them at the high
    end. Each input sample ``x[n, c, i]`` is spread over ``q = i*stride + r*dilation - padding``:
    written as a sum over the output, with ``Cg = C/groups``, ``Og = O/groups``, ``g = o // Og``,

    ``y[n, o, q] = bias[o] + sum_{c < Cg, r, i : i*stride + r*dilation = q + padding}
    x[n, g*Cg + c, i] * w[g*Cg + c, o - g*Og, r]``

    Output size ``(in-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1``
    (``refimpl.geometry.transpose_output_shape``).

    >>> x = np.array([[[1., 2., 3., 4., 5.]]])
    >>> w = np.array([[[1., 1., 1.]]])
    >>> conv_transpose(x, w, stride=2)          # x[i] lands on 2i, 2i+1, 2i+2
    array([[[1., 1., 3., 2., 5., 3., 7., 4., 9., 5., 5.]]])
    >>> conv_transpose(x, w, stride=2, padding=1, output_padding=1)
    array([[[1., 3., 2., 5., 3., 7., 4., 9., 5., 5.]]])
    """
    x, w = _array(x, "x"), _array(w, "w")
    out_shape = validate_transpose(x.shape, w.shape, stride=stride, padding=padding,
                                   output_padding=output_padding, dilation=dilation, groups=groups)
    bias = _check_bias(bias, out_shape[1])
    n_axes = x.ndim - 2
    stride = positive_tuple(stride, n_axes, "stride")
    dilation = positive_tuple(dilation, n_axes, "dilation")
    padding = as_tuple(padding, n_axes, "padding")
    batch, channels, *in_spatial = x.shape
    kernel, og = w.shape[2:], w.shape[1]
    x, w = _float(x), _float(w)
    cg = channels // groups
    y = np.empty(out_shape, dtype=_result_dtype(x, w, bias))
    for n, o, *q in np.ndindex(*y.shape):
        g = o // og
        terms = []
        for c in range(g * cg, (g + 1) * cg):
            for r in np.ndindex(*kernel):
                i = []
                for qa, ra, s, d, pa, size in zip(q, r, stride, dilation, padding, in_spatial):
                    t = qa + pa - ra * d            # = i * stride when tap r reaches q
                    if t % s or not 0 <= t // s < size:
                        break
                    i.append(t // s)
                else:
                    terms.append(x[(n, c) + tuple(i)] * w[(c, o - g * og) + r])
        y[(n, o) + tuple(q)] = _exact_sum(np.array(terms, dtype=y.dtype),
                                          0.0 if bias is None else bias[o].item())
    return y


def conv_transpose_at(x, w, bias, index, *, stride=1, padding=0, output_padding=0, dilation=1,
                      groups=1):
    """One element ``y[index]`` of ``conv_transpose(x, w, bias, ...)``, without the output.

    Per axis, the pairs ``(i, r)`` with ``i*stride + r*dilation = q + padding`` are listed;
    their products are summed exactly as ``conv_transpose`` does (identical results).

    >>> x = np.array([[[1., 2., 3., 4., 5.]]])
    >>> print(conv_transpose_at(x, [[[1., 1., 1.]]], None, (0, 0, 4), stride=2))  # x[1] + x[2]
    5.0
    """
    x, w = _array(x, "x"), _array(w, "w")
    out_shape = validate_transpose(x.shape, w.shape, stride=stride, padding=padding,
                                   output_padding=output_padding, dilation=dilation, groups=groups)
    bias = _check_bias(bias, out_shape[1])
    n, o, *q = _check_index(index, out_shape)
    n_axes = x.ndim - 2
    stride = positive_tuple(stride, n_axes, "stride")
    dilation = positive_tuple(dilation, n_axes, "dilation")
    padding = as_tuple(padding, n_axes, "padding")
    cg, og = x.shape[1] // groups, w.shape[1]
    g = o // og
    # per axis: the input positions i and taps r that reach q
    pairs = [[(t // s, r) for r in range(k) for t in (qa + pa - r * d,)
              if t % s == 0 and 0 <= t // s < size]
             for qa, k, s, d, pa, size in zip(q, w.shape[2:], stride, dilation, padding,
                                              x.shape[2:])]
    channels = np.arange(g * cg, (g + 1) * cg)
    inputs = [np.array([i for i, _ in axis], dtype=np.intp) for axis in pairs]
    taps = [np.array([r for _, r in axis], dtype=np.intp) for axis in pairs]
    # terms[c, j0, j1, ...] = x[n, c, i0[j0], ...] * w[c, o - g*Og, r0[j0], ...]
    terms = _float(x[n][np.ix_(channels, *inputs)]) * \
        _float(w[:, o - g * og][np.ix_(channels, *taps)])
    total = _exact_sum(terms, 0.0 if bias is None else bias[o].item())
    return _scalar(total, x, w, bias)


def _scalar(total, *arrays):
    return np.complex128(total) if _result_dtype(*arrays) == np.complex128 else np.float64(total)


def conv_grad_input(dy, w, input_shape, *, stride=1, padding=0, dilation=1, groups=1,
                    border="constant", cval=0.0) -> np.ndarray:
    """Gradient of ``sum(conv(x, w, ...) * dy)`` with respect to ``x`` (of shape ``input_shape``).

    Output ``y[n, o, p]`` read ``xp[n, g*Cg + c, j]`` at ``j = p*stride + r*dilation`` with
    weight ``w[o, c, r]``, so that padded position receives ``w[o, c, r] * dy[n, o, p]``.
    A padded position inside the input is the input sample; one in the border folds back into
    the sample it was read from, ``source_index(j - lo, size, border)`` per axis; a ``constant``
    border position read ``cval`` and passes nothing on:

    ``dx[n, g*Cg + c, i] = sum_{o in group g, p, r : source(p*stride + r*dilation) = i}
    w[o, c, r] * dy[n, o, p]``

    >>> w = np.array([[[1., 2., 3.]]])
    >>> dy = np.ones((1, 1, 5))
    >>> conv_grad_input(dy, w, (1, 1, 5), padding=1)        # xp[0], xp[6] are cval: dropped
    array([[[3., 6., 6., 6., 5.]]])
    >>> conv_grad_input(dy, w, (1, 1, 5), padding=1, border="edge")   # 1+3, ..., 5+3
    array([[[4., 6., 6., 6., 8.]]])
    """
    w = _array(w, "w")
    input_shape = _shape(input_shape, "input_shape")
    layer = _layer(input_shape, w.shape, stride=stride, padding=padding, dilation=dilation,
                   groups=groups, border=border, cval=cval, x_name="input_shape")
    dy = _check_dy(dy, layer)
    w = _float(w)
    cg, og = layer.in_per_group, layer.out_per_group
    terms: dict[tuple[int, ...], list] = {}
    for n, o, *p in np.ndindex(*dy.shape):
        g = o // og
        for c in range(cg):
            for r in np.ndindex(*layer.kernel):
                src = tuple(source_index(pa * s + ra * d - lo, size, layer.border)
                            for pa, ra, s, d, (lo, _), size
                            in zip(p, r, layer.stride, layer.dilation, layer.pads,
                                   layer.in_spatial))
                if None in src:
                    continue
                terms.setdefault((n, g * cg + c) + src, []).append(
                    w[(o, c) + r] * dy[(n, o) + tuple(p)])
    dx = np.zeros(input_shape, dtype=_result_dtype(w, dy))
    for i, contributions in terms.items():
        dx[i] = _exact_sum(np.array(contributions))
    return dx


def conv_grad_input_at(dy, w, input_shape, index, *, stride=1, padding=0, dilation=1, groups=1,
                       border="constant", cval=0.0):
    """One element ``dx[index]`` of ``conv_grad_input(dy, w, input_shape, ...)``.

    Per axis, the pairs ``(p, r)`` whose padded position ``p*stride + r*dilation`` reads input
    sample ``i`` (directly or folded back through the border) are listed; the products are
    summed exactly as ``conv_grad_input`` does (identical results).

    >>> w = np.array([[[1., 2., 3.]]])
    >>> print(conv_grad_input_at(np.ones((1, 1, 5)), w, (1, 1, 5), (0, 0, 1), padding=1,
    ...                          border="reflect"))     # 3 + 2 + 1, plus xp[0] = x[1]: + 1
    7.0
    """
    w = _array(w, "w")
    input_shape = _shape(input_shape, "input_shape")
    layer = _layer(input_shape, w.shape, stride=stride, padding=padding, dilation=dilation,
                   groups=groups, border=border, cval=cval, x_name="input_shape")
    dy = _check_dy(dy, layer)
    n, ci, *i = _check_index(index, input_shape)
    cg, og = layer.in_per_group, layer.out_per_group
    g, c = divmod(ci, cg)
    pairs = [[(p, r) for p in range(out) for r in range(k)
              if source_index(p * s + r * d - lo, size, layer.border) == ia]
             for ia, out, k, s, d, (lo, _), size
             in zip(i, layer.out_spatial, layer.kernel, layer.stride, layer.dilation, layer.pads,
                    layer.in_spatial)]
    outputs = np.arange(g * og, (g + 1) * og)
    positions = [np.array([p for p, _ in axis], dtype=np.intp) for axis in pairs]
    taps = [np.array([r for _, r in axis], dtype=np.intp) for axis in pairs]
    # terms[o, j0, j1, ...] = w[o, c, r0[j0], ...] * dy[n, o, p0[j0], ...]
    terms = _float(w[:, c][np.ix_(outputs, *taps)]) * dy[n][np.ix_(outputs, *positions)]
    return _scalar(_exact_sum(terms), w, dy)


def conv_grad_weight(x, dy, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                     border="constant", cval=0.0) -> np.ndarray:
    """Gradient of ``sum(conv(x, w, ...) * dy)`` with respect to ``w`` (of shape ``weight_shape``).

    ``dw[o, c, r] = sum_{n, p} dy[n, o, p] * xp[n, g*Cg + c, p*stride + r*dilation]``

    with ``xp`` = ``x`` extended by ``border`` (``cval`` counts: it is a value the kernel read).

    >>> x = np.array([[[1., 2., 3., 4., 5.]]])
    >>> dy = np.ones((1, 1, 3))
    >>> conv_grad_weight(x, dy, (1, 1, 3))                  # 1+2+3, 2+3+4, 3+4+5
    array([[[ 6.,  9., 12.]]])
    >>> conv_grad_weight(x, np.ones((1, 1, 5)), (1, 1, 3), padding="same", border="symmetric")
    array([[[11., 15., 19.]]])
    """
    x = _array(x, "x")
    weight_shape = _shape(weight_shape, "weight_shape")
    layer = _layer(x.shape, weight_shape, stride=stride, padding=padding, dilation=dilation,
                   groups=groups, border=border, cval=cval, w_name="weight_shape")
    dy = _check_dy(dy, layer)
    xp = pad(x, ((0, 0), (0, 0)) + layer.pads, layer.border, layer.cval)
    cg, og = layer.in_per_group, layer.out_per_group
    dw = np.empty(weight_shape, dtype=_result_dtype(xp, dy))
    for o, c, *r in np.ndindex(*weight_shape):
        g = o // og
        first = tuple(ra * d for ra, d in zip(r, layer.dilation))
        # taps[n, p] = xp[n, g*Cg + c, p*stride + r*dilation]
        taps = xp[(slice(None), g * cg + c) + _taps(first, layer.out_spatial, layer.stride)]
        dw[(o, c) + tuple(r)] = _exact_sum(dy[:, o] * taps)
    return dw


def conv_grad_weight_at(x, dy, weight_shape, index, *, stride=1, padding=0, dilation=1, groups=1,
                        border="constant", cval=0.0):
    """One element ``dw[index]`` of ``conv_grad_weight(x, dy, weight_shape, ...)``.

    Gathers the ``N * prod(out_spatial)`` samples tap ``r`` reads through
    ``refimpl.pad.source_index`` (no padded copy of ``x``); same products, same rounding
    as ``conv_grad_weight``.

    >>> x = np.array([[[1., 2., 3.]]])
    >>> print(conv_grad_weight_at(x, np.ones((1, 1, 3)), (1, 1, 3), (0, 0, 2), padding=1,
    ...                           cval=10.0))                        # 2 + 3 + 10
    15.0
    """
    x = _array(x, "x")
    weight_shape = _shape(weight_shape, "weight_shape")
    layer = _layer(x.shape, weight_shape, stride=stride, padding=padding, dilation=dilation,
                   groups=groups, border=border, cval=cval, w_name="weight_shape")
    dy = _check_dy(dy, layer)
    o, c, *r = _check_index(index, weight_shape)
    g = o // layer.out_per_group
    sources = [[source_index(p * s + ra * d - lo, size, layer.border) for p in range(out)]
               for ra, out, s, d, (lo, _), size
               in zip(r, layer.out_spatial, layer.stride, layer.dilation, layer.pads,
                      layer.in_spatial)]
    inside = [np.array([j is not None for j in axis]) for axis in sources]
    index_arrays = [np.array([0 if j is None else j for j in axis], dtype=np.intp)
                    for axis in sources]
    # taps[n, p] = xp[n, g*Cg + c, p*stride + r*dilation]: x where every axis is inside
    taps = _float(x[:, g * layer.in_per_group + c][np.ix_(np.arange(layer.batch),
                                                           *index_arrays)])
    everywhere = np.ones(layer.out_spatial, dtype=bool)
    for axis, m in enumerate(inside):
        everywhere &= m.reshape([-1 if a == axis else 1 for a in range(len(inside))])
    taps = np.where(everywhere[None], taps, layer.cval)
    return _scalar(_exact_sum(dy[:, o] * taps), x, dy)


def conv_grad_bias(dy) -> np.ndarray:
    """Gradient of ``sum(conv(x, w, bias, ...) * dy)`` with respect to ``bias``.

    ``db[o] = sum_{n, p} dy[n, o, p]``

    >>> conv_grad_bias(np.array([[[1., 2., 3., 4., 5.]]]))
    array([15.])
    """
    dy = _array(dy, "dy")
    if not 3 <= dy.ndim <= 5:
        raise ValueError(f"dy must have 3 to 5 dimensions (N, O, *spatial), got shape {dy.shape}")
    dy = _float(dy)
    return np.array([_exact_sum(dy[:, o]) for o in range(dy.shape[1])], dtype=dy.dtype)
