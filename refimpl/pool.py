"""Pooling oracles: ``max_pool``, ``avg_pool``, ``lp_pool`` and their gradients.

torch.nn.functional's meanings, written out. Arrays are (N, C, *spatial) with 1, 2 or 3
spatial axes; every result is float64.

Windows. On a spatial axis of length ``n`` with kernel ``k``, stride ``s``, padding ``p``
and dilation ``d``, the window of output position ``o`` reads the input positions::

    i = o*s - p + j*d        for j = 0, 1, ..., k-1

Positions outside ``0 <= i < n`` are padding. In more than one spatial axis the window is
the product of the per-axis windows, scanned row-major over the kernel offsets ``j`` (the
last axis fastest); that scan order decides ties in ``max_pool``.

Output size (``geometry.pool_output_shape``, the one place it is computed)::

    out = floor((n + 2p - d*(k-1) - 1) / s) + 1          ceil_mode=False
    out = ceil((n + 2p - d*(k-1) - 1) / s) + 1           ceil_mode=True, then
          out -= 1 if (out-1)*s >= n + p                 (a last window that would start
                                                          in the right padding is dropped)

So with ``ceil_mode`` the last window may hang beyond the padded input; it always starts
inside the input or the left padding. ``stride`` defaults to ``kernel_size``, and torch's
rule ``0 <= padding <= kernel_size // 2`` (the kernel, not its dilated extent) holds.

>>> x = np.array([[[1., 3., 2., 5., 4.]]])
>>> max_pool(x, 2), avg_pool(x, 2), lp_pool(x, 1, 2)
(array([[[3., 5.]]]), array([[[2. , 3.5]]]), array([[[4., 7.]]]))
"""
from __future__ import annotations

import itertools
import numbers

import numpy as np

from refimpl.geometry import as_tuple, pool_output_shape, positive_tuple

__all__ = [
    "max_pool", "max_pool_indices", "max_pool_grad",
    "avg_pool", "avg_pool_grad",
    "lp_pool", "lp_pool_grad",
    "validate",
    "max_pool_at", "avg_pool_at", "lp_pool_at",
    "max_pool_grad_at", "avg_pool_grad_at", "lp_pool_grad_at",
]


# ---------------------------------------------------------------------------------------
# Validation (all of it runs before any work)
# ---------------------------------------------------------------------------------------

def _check_shape(shape, dtype, name: str) -> tuple[int, ...]:
    """An array's shape and dtype: (N, C, *spatial), 1-3 spatial axes, not empty, real."""
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    if dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (bool, int or float), got dtype {dtype}")
    if len(shape) not in (3, 4, 5):
        raise ValueError(
            f"{name} must have 3, 4 or 5 axes (N, C, *spatial with 1-3 spatial axes), "
            f"got shape {shape}"
        )
    if 0 in shape:
        raise ValueError(f"{name} must not be empty, got shape {shape}")
    return shape


def _check_array(x, name: str) -> np.ndarray:
    """``x`` as float64 of shape (N, C, *spatial), 1-3 spatial axes, not empty."""
    x = np.asarray(x)
    _check_shape(x.shape, x.dtype, name)
    return x.astype(np.float64)


def _check_input_shape(input_shape) -> tuple[int, ...]:
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise TypeError(f"input_shape must be a sequence of ints, got {input_shape!r}") from None
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in shape):
        raise TypeError(f"input_shape must be a sequence of ints, got {input_shape!r}")
    if len(shape) not in (3, 4, 5):
        raise ValueError(
            f"input_shape must have 3, 4 or 5 entries (N, C, *spatial), got {input_shape!r}"
        )
    if any(v < 1 for v in shape):
        raise ValueError(f"input_shape must be >= 1 everywhere (no empty arrays), got {input_shape!r}")
    return tuple(int(v) for v in shape)


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_divisor(divisor_override) -> int | None:
    if divisor_override is None:
        return None
    if isinstance(divisor_override, bool) or not isinstance(divisor_override, numbers.Integral):
        raise TypeError(f"divisor_override must be None or a nonzero int, got {divisor_override!r}")
    if divisor_override == 0:
        raise ValueError("divisor_override must be None or a nonzero int, got 0")
    return int(divisor_override)


def _check_norm_type(norm_type) -> float:
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"norm_type must be a real number (p of the p-norm), got {norm_type!r}")
    p = float(norm_type)
    if p == 0 or np.isnan(p):
        raise ValueError(f"norm_type must be nonzero and not NaN (inf is allowed), got {norm_type!r}")
    return p


def _geometry(spatial, kernel_size, stride, padding, dilation, ceil_mode):
    """Per-axis kernel, stride, padding, dilation and the output spatial shape."""
    n = len(spatial)
    kernel = positive_tuple(kernel_size, n, "kernel_size")
    stride = kernel if stride is None else positive_tuple(stride, n, "stride")
    padding = as_tuple(padding, n, "padding")
    dilation = positive_tuple(dilation, n, "dilation")
    ceil_mode = _check_bool(ceil_mode, "ceil_mode")
    out = pool_output_shape(spatial, kernel, stride, padding, dilation, ceil_mode)
    return kernel, stride, padding, dilation, out


def _check_dy_shape(shape, dtype, out_shape) -> None:
    shape = _check_shape(shape, dtype, "dy")
    if shape != tuple(out_shape):
        raise ValueError(f"dy must have the pooled output's shape {tuple(out_shape)}, got {shape}")


def _check_dy(dy, out_shape) -> np.ndarray:
    dy = np.asarray(dy)
    _check_dy_shape(dy.shape, dy.dtype, out_shape)
    return dy.astype(np.float64)


# ---------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------

def _window(o, kernel, stride, padding, dilation):
    """Input positions read by output position ``o``, padding included, in scan order
    (row-major over the kernel offsets): ``i = o*s - p + j*d`` on every axis."""
    for j in np.ndindex(*kernel):
        yield tuple(oa * s - p + ja * d
                    for oa, ja, s, p, d in zip(o, j, stride, padding, dilation))


def _inside(i, spatial) -> bool:
    return all(0 <= ia < n for ia, n in zip(i, spatial))


# ---------------------------------------------------------------------------------------
# max_pool
# ---------------------------------------------------------------------------------------

def _max_pool(x, kernel, stride, padding, dilation, out_spatial):
    """Values and flat argmax indices, torch's scan: the first input element of the window
    starts as the best; a later one replaces it when it is greater, or when it is NaN."""
    nc = x.shape[:2]
    spatial = x.shape[2:]
    y = np.full(nc + out_spatial, -np.inf)
    index = np.full(nc + out_spatial, -1, dtype=np.int64)
    for o in np.ndindex(*out_spatial):
        best = np.full(nc, -np.inf)
        best_index = np.full(nc, -1, dtype=np.int64)
        for i in _window(o, kernel, stride, padding, dilation):
            if not _inside(i, spatial):
                continue  # padding is -inf: it never wins
            v = x[(..., *i)]  # this position in every (n, c) plane at once
            take = (best_index == -1) | (v > best) | np.isnan(v)
            best = np.where(take, v, best)
            best_index = np.where(take, np.ravel_multi_index(i, spatial), best_index)
        y[(..., *o)] = best
        index[(..., *o)] = best_index
    return y, index


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False) -> np.ndarray:
    """Maximum over each window, padding read as -inf (torch's ``max_pool1d/2d/3d``).

    ``y[n, c, o] = max over j of x[n, c, o*s - p + j*d]`` (positions outside the input
    are -inf). NaN propagates: a window holding a NaN gives NaN. A window that sees only
    padding (possible only with dilation) gives -inf.

    >>> x = np.array([[[1., 3., 2., 5., 4.]]])
    >>> max_pool(x, 2)                         # windows [1 3] [2 5]; the 4 is left over
    array([[[3., 5.]]])
    >>> max_pool(x, 2, ceil_mode=True)         # a third window [4 .] hangs off the end
    array([[[3., 5., 4.]]])
    >>> max_pool(x, 3, stride=2, padding=1)    # [-inf 1 3] [3 2 5] [5 4 -inf]
    array([[[3., 5., 5.]]])
    >>> max_pool(x, 2, stride=1, dilation=3)   # [x0 x3] [x1 x4]
    array([[[5., 4.]]])
    >>> max_pool(np.array([[[1., np.nan, 3., 2., 5.]]]), 2, stride=1)
    array([[[nan, nan,  3.,  5.]]])
    """
    x = _check_array(x, "x")
    kernel, stride, padding, dilation, out = _geometry(
        x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    return _max_pool(x, kernel, stride, padding, dilation, out)[0]


def max_pool_indices(x, kernel_size, stride=None, padding=0, dilation=1,
                     ceil_mode=False) -> np.ndarray:
    """The element each ``max_pool`` output took, as torch's ``return_indices=True`` gives it:
    a flat (row-major) index into the spatial plane of ``x[n, c]``, int64.

    Scan each window row-major over the kernel offsets. The first input element starts as
    the best; a later element replaces it when it is greater, or when it is NaN. Hence:
    on ties the FIRST maximum in scan order is chosen; any NaN beats every number, and
    among several NaNs the LAST one is chosen (torch CPU's ``val > max || isnan(val)``).

    A window that sees only padding (dilation jumping over the whole input) has no
    element: its index is -1. torch returns an index past the window there and its
    backward then writes the gradient into an unrelated element; we send none.

    >>> x = np.array([[[2., 5., 5., 1., 5.]]])
    >>> max_pool_indices(x, 5)                 # three 5s tie: the first one
    array([[[1]]])
    >>> max_pool_indices(x, 3, stride=1)       # [2 5 5] [5 5 1] [5 1 5]
    array([[[1, 1, 2]]])
    >>> max_pool_indices(np.array([[[1., np.nan, 3., np.nan, 2.]]]), 5)   # the last NaN
    array([[[3]]])
    >>> max_pool_indices(np.array([[[1., 2., 3., 4., 5.]]]), 2, padding=1, dilation=6)
    array([[[-1]]])
    """
    x = _check_array(x, "x")
    kernel, stride, padding, dilation, out = _geometry(
        x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    return _max_pool(x, kernel, stride, padding, dilation, out)[1]


def max_pool_grad(dy, x, kernel_size, stride=None, padding=0, dilation=1,
                  ceil_mode=False) -> np.ndarray:
    """Gradient of ``sum(max_pool(x) * dy)`` with respect to ``x`` (torch autograd's choice).

    Each ``dy[n, c, o]`` goes whole to the element ``max_pool_indices`` chose
    (``dx[n, c].flat[index[n, c, o]] += dy[n, c, o]``): the first maximum on ties, the
    last NaN if there are NaNs; overlapping windows add up. A window that sees only
    padding passes no gradient.

    >>> x = np.array([[[2., 5., 5., 1., 5.]]])
    >>> max_pool_grad(np.array([[[10., 20., 30.]]]), x, 3, stride=1)   # argmax 1, 1, 2
    array([[[ 0., 30., 30.,  0.,  0.]]])
    """
    x = _check_array(x, "x")
    kernel, stride, padding, dilation, out = _geometry(
        x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    dy = _check_dy(dy, x.shape[:2] + out)
    index = _max_pool(x, kernel, stride, padding, dilation, out)[1]
    dx = np.zeros(x.shape)
    for n, c in np.ndindex(*x.shape[:2]):
        plane = dx[n, c].reshape(-1)  # a view: writes land in dx
        for o in np.ndindex(*out):
            if index[(n, c, *o)] >= 0:
                plane[index[(n, c, *o)]] += dy[(n, c, *o)]
    return dx


# ---------------------------------------------------------------------------------------
# avg_pool
# ---------------------------------------------------------------------------------------

def _avg_windows(spatial, kernel, stride, padding, out_spatial, count_include_pad,
                 divisor_override):
    """For every output position: the input positions it sums, and its divisor.

    divisor = divisor_override if given, else
              count_include_pad: window positions inside the padded input
                                 (-p <= i < n + p on every axis; zero padding counts, the
                                 part of a ceil_mode window beyond the padding does not)
              otherwise:         window positions inside the input (0 <= i < n)
    """
    dilation = (1,) * len(spatial)  # torch's avg_pool has no dilation
    for o in np.ndindex(*out_spatial):
        positions, in_padded = [], 0
        for i in _window(o, kernel, stride, padding, dilation):
            if all(-p <= ia < n + p for ia, n, p in zip(i, spatial, padding)):
                in_padded += 1
            if _inside(i, spatial):
                positions.append(i)
        if divisor_override is not None:
            divisor = divisor_override
        else:
            divisor = in_padded if count_include_pad else len(positions)
        yield o, positions, divisor


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None) -> np.ndarray:
    """Window sum over a divisor, padding read as 0 (torch's ``avg_pool1d/2d/3d``).

    ``y[n, c, o] = (sum over the window's positions inside the input of x[n, c, i]) / D``
    with ``D = divisor_override`` if given, else with ``count_include_pad`` the number of
    window positions inside the zero-padded input (``-p <= i < n + p``: zero padding is
    counted, the part of a ceil_mode window hanging beyond the padding is not), else the
    number inside the input itself. (torch's ``avg_pool1d`` has no ``divisor_override``;
    here it works for every rank, as in ``avg_pool2d/3d``. torch's ``avg_pool3d`` also
    refuses an input axis shorter than the kernel even where the padding makes the
    window fit; ``avg_pool2d`` and this oracle accept it.)

    >>> x = np.array([[[1., 3., 2., 5., 4.]]])
    >>> avg_pool(x, 2)                                      # (1+3)/2, (2+5)/2
    array([[[2. , 3.5]]])
    >>> avg_pool(x, 2, ceil_mode=True)                      # last window [4 .]: 4/1
    array([[[2. , 3.5, 4. ]]])
    >>> avg_pool(x, 3, stride=2, padding=1)                 # [0 1 3]/3 [3 2 5]/3 [5 4 0]/3
    array([[[1.33333333, 3.33333333, 3.        ]]])
    >>> avg_pool(x, 3, stride=2, padding=1, count_include_pad=False)   # 4/2 10/3 9/2
    array([[[2.        , 3.33333333, 4.5       ]]])
    >>> avg_pool(x, 2, stride=2, padding=1, ceil_mode=True)  # [0 1]/2 [3 2]/2 [5 4]/2
    array([[[0.5, 2.5, 4.5]]])
    >>> avg_pool(x, 2, divisor_override=1)                  # plain window sums
    array([[[4., 7.]]])
    """
    x = _check_array(x, "x")
    count_include_pad = _check_bool(count_include_pad, "count_include_pad")
    divisor_override = _check_divisor(divisor_override)
    kernel, stride, padding, _, out = _geometry(x.shape[2:], kernel_size, stride, padding, 1,
                                                ceil_mode)
    y = np.zeros(x.shape[:2] + out)
    for o, positions, divisor in _avg_windows(x.shape[2:], kernel, stride, padding, out,
                                              count_include_pad, divisor_override):
        total = np.zeros(x.shape[:2])
        for i in positions:
            total += x[(..., *i)]
        y[(..., *o)] = total / divisor
    return y


def avg_pool_grad(dy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                  count_include_pad=True, divisor_override=None) -> np.ndarray:
    """Gradient of ``sum(avg_pool(x) * dy)`` with respect to ``x`` of shape ``input_shape``.

    ``dx[n, c, i] = sum over windows o that read input position i of dy[n, c, o] / D(o)``
    with the divisor ``D(o)`` of ``avg_pool``; padding receives nothing.

    >>> avg_pool_grad(np.array([[[6., 12., 18.]]]), (1, 1, 5), 3, stride=2, padding=1)
    array([[[ 2.,  6.,  4., 10.,  6.]]])
    """
    input_shape = _check_input_shape(input_shape)
    count_include_pad = _check_bool(count_include_pad, "count_include_pad")
    divisor_override = _check_divisor(divisor_override)
    kernel, stride, padding, _, out = _geometry(input_shape[2:], kernel_size, stride, padding, 1,
                                                ceil_mode)
    dy = _check_dy(dy, input_shape[:2] + out)
    dx = np.zeros(input_shape)
    for o, positions, divisor in _avg_windows(input_shape[2:], kernel, stride, padding, out,
                                              count_include_pad, divisor_override):
        for i in positions:
            dx[(..., *i)] += dy[(..., *o)] / divisor
    return dx


# ---------------------------------------------------------------------------------------
# lp_pool
# ---------------------------------------------------------------------------------------

def _sgn(x):
    """torch's sign: +1, -1, or 0 for zero AND for NaN (torch.sign(nan) is 0)."""
    return np.where(x > 0, 1.0, np.where(x < 0, -1.0, 0.0))


def lp_pool(x, norm_type, kernel_size, stride=None, ceil_mode=False) -> np.ndarray:
    """Power-sum pooling, torch's ``lp_pool1d/2d/3d`` (no padding, no dilation).

    With ``p = norm_type``, area ``A`` = product of kernel_size and ``m`` = the number of
    window positions inside the input::

        y = ((A / m) * sum over the window's input positions of x**p) ** (1/p)

    torch computes it as ``avg_pool(x**p, ...) * A`` raised to ``1/p`` (its
    ``sign(v) * relu(|v|)`` step leaves every ``v`` unchanged). So ``A/m`` is 1 for a full
    window, but a ceil_mode window hanging off the end has its partial sum scaled up by
    ``A/m``. Powers follow IEEE pow: ``x**p`` with negative ``x`` and non-integer ``p`` is
    NaN, and so is a negative ``v`` to a non-integer ``1/p``; p = 1 gives plain
    window sums, signs kept. ``norm_type = inf`` is ``max_pool(|x|)``, ``-inf`` is
    ``-max_pool(-|x|)`` (the smallest ``|x|``), both with the same ceil_mode windows.

    >>> x = np.array([[[1., 3., 2., 5., 4.]]])
    >>> lp_pool(x, 1, 2)                      # 1+3, 2+5
    array([[[4., 7.]]])
    >>> lp_pool(x, 2, 2) ** 2                 # 1+9, 4+25 (up to rounding)
    array([[[10., 29.]]])
    >>> lp_pool(x, 1, 2, ceil_mode=True)      # last window [4 .]: 4 * (2/1) = 8
    array([[[4., 7., 8.]]])
    >>> lp_pool(-x, float("inf"), 2, ceil_mode=True)
    array([[[3., 5., 4.]]])
    """
    x = _check_array(x, "x")
    p = _check_norm_type(norm_type)
    kernel, stride, _, _, out = _geometry(x.shape[2:], kernel_size, stride, 0, 1, ceil_mode)
    if p == np.inf:
        return _max_pool(np.abs(x), kernel, stride, (0,) * len(kernel), (1,) * len(kernel), out)[0]
    if p == -np.inf:
        return -_max_pool(-np.abs(x), kernel, stride, (0,) * len(kernel), (1,) * len(kernel), out)[0]
    area = int(np.prod(kernel))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        v = area * avg_pool(x ** p, kernel, stride, 0, ceil_mode)  # = (A/m) * window sum
        return v ** (1.0 / p)


def lp_pool_grad(dy, x, norm_type, kernel_size, stride=None, ceil_mode=False) -> np.ndarray:
    """Gradient of ``sum(lp_pool(x) * dy)`` with respect to ``x``, as torch autograd has it.

    With ``v`` the powered window sum of ``lp_pool`` (``y = v ** (1/p)``)::

        g    = dy * (1/p) * v ** (1/p - 1) * sgn(v) * sgn(v),   set to 0 where v == 0
        dx_i = p * x_i ** (p - 1) * sum over windows o reading i of (A / m(o)) * g(o)

    This is autograd through torch's ``sign(v) * relu(|v|)`` step. "Set to 0 where
    v == 0" is the relu mask: a window whose power sum is zero passes no gradient (even
    where ``v ** (1/p - 1)`` is inf). ``sgn`` is torch's sign, which is 0 at NaN: a window
    whose sum is NaN passes 0 where ``v ** (1/p - 1)`` is finite (p = 1: NaN ** 0 = 1),
    NaN otherwise. For every finite nonzero ``v`` the ``sgn(v) * sgn(v)`` factor is 1.
    ``norm_type = +-inf``: ``max_pool_grad(dy, +-|x|) * sgn(x)``, again with torch's sign
    (so the NaN that max_pool picks gets gradient 0, as does an x of 0).

    >>> x = np.array([[[1., 3., 2., 5., 4.]]])
    >>> lp_pool_grad(np.ones((1, 1, 2)), x, 1, 2)             # d(sum)/dx = 1 in a window
    array([[[1., 1., 1., 1., 0.]]])
    >>> lp_pool_grad(np.ones((1, 1, 2)), x, float("inf"), 2)  # to the max |x|
    array([[[0., 1., 0., 1., 0.]]])
    """
    x = _check_array(x, "x")
    p = _check_norm_type(norm_type)
    kernel, stride, _, _, out = _geometry(x.shape[2:], kernel_size, stride, 0, 1, ceil_mode)
    dy = _check_dy(dy, x.shape[:2] + out)
    if p in (np.inf, -np.inf):
        sign = 1.0 if p > 0 else -1.0
        return max_pool_grad(dy, sign * np.abs(x), kernel, stride, 0, 1, ceil_mode) * _sgn(x)
    area = int(np.prod(kernel))
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        v = area * avg_pool(x ** p, kernel, stride, 0, ceil_mode)
        g = np.where(v == 0, 0.0, dy * (1.0 / p) * v ** (1.0 / p - 1.0) * _sgn(v) * _sgn(v))
        # avg_pool_grad divides by m(o); times A gives the (A / m(o)) of the formula
        window_sum = avg_pool_grad(area * g, x.shape, kernel, stride, 0, ceil_mode)
        return window_sum * p * x ** (p - 1.0)


# ---------------------------------------------------------------------------------------
# Shape-level validation (no arrays): what a harness checks before any work
# ---------------------------------------------------------------------------------------

_FORWARD = {"max_pool": ("kernel_size", "stride", "padding", "dilation", "ceil_mode"),
            "avg_pool": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
                         "divisor_override"),
            "lp_pool": ("norm_type", "kernel_size", "stride", "ceil_mode")}
_GRAD_OF = {"max_pool_grad": "max_pool", "avg_pool_grad": "avg_pool", "lp_pool_grad": "lp_pool"}


def validate(op: str, shapes, dtypes, **params) -> tuple[int, ...]:
    """Check a call of ``op`` from its arrays' shapes and dtypes alone, with the errors the
    oracle itself raises (same words, same order: arrays, then parameters); returns the
    shape of the result. ``params`` are the oracle's keyword arguments.

    ``shapes``/``dtypes``: (x,) for the forward ops, (dy, x) for ``max_pool_grad`` and
    ``lp_pool_grad``, (dy,) for ``avg_pool_grad`` (whose ``input_shape`` is a parameter).

    >>> validate("max_pool", [(1, 64, 112, 112)], ["float32"], kernel_size=3, stride=2, padding=1)
    (1, 64, 56, 56)
    >>> validate("avg_pool_grad", [(1, 1, 2)], ["float64"], input_shape=(1, 1, 5), kernel_size=2)
    (1, 1, 5)
    >>> validate("max_pool", [(1, 1, 5)], ["float32"], kernel_size=3, padding=2)
    Traceback (most recent call last):
    ...
    ValueError: padding must be between 0 and kernel_size // 2 = 1, got 2
    """
    forward = _GRAD_OF.get(op, op)
    if forward not in _FORWARD:
        raise ValueError(f"unknown pooling op {op!r}; "
                         f"accepted: {', '.join([*_FORWARD, *_GRAD_OF])}")
    accepted = _FORWARD[forward] + (("input_shape",) if op == "avg_pool_grad" else ())
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(f"{op}() got unexpected keyword argument(s) {unknown}; "
                        f"accepted: {list(accepted)}")
    required = ("kernel_size",) + (("norm_type",) if forward == "lp_pool" else ()) \
        + (("input_shape",) if op == "avg_pool_grad" else ())
    missing = [k for k in required if params.get(k) is None]
    if missing:
        raise TypeError(f"{op}() missing required argument(s) {missing}")
    shapes, dtypes = list(shapes), list(dtypes)
    names = {"max_pool_grad": ("dy", "x"), "lp_pool_grad": ("dy", "x"),
             "avg_pool_grad": ("dy",)}.get(op, ("x",))
    if len(shapes) != len(names) or len(dtypes) != len(names):
        raise TypeError(f"{op}() takes the arrays {names}, got {len(shapes)} shapes and "
                        f"{len(dtypes)} dtypes")
    arrays = dict(zip(names, zip(shapes, dtypes)))
    if op == "avg_pool_grad":
        x_shape = _check_input_shape(params["input_shape"])
    else:
        x_shape = _check_shape(*arrays["x"], "x")
    p = dict(params)
    if forward == "lp_pool":
        _check_norm_type(p["norm_type"])
        p.update(padding=0, dilation=1)
    if forward == "avg_pool":
        _check_bool(p.get("count_include_pad", True), "count_include_pad")
        _check_divisor(p.get("divisor_override"))
        p["dilation"] = 1
    *_, out = _geometry(x_shape[2:], p["kernel_size"], p.get("stride"), p.get("padding", 0),
                        p.get("dilation", 1), p.get("ceil_mode", False))
    out_shape = x_shape[:2] + out
    if op == forward:
        return out_shape
    _check_dy_shape(*arrays["dy"], out_shape)
    return x_shape


# ---------------------------------------------------------------------------------------
# Pointwise oracles: one output element, read straight from its window (large cases)
# ---------------------------------------------------------------------------------------

def _check_index(index, shape) -> tuple[int, ...]:
    index = tuple(int(i) for i in index)
    if len(index) != len(shape) or not all(0 <= i < n for i, n in zip(index, shape)):
        raise ValueError(f"index {index} is outside the result's shape {tuple(shape)}")
    return index


def _max_at(plane, o, kernel, stride, padding, dilation, value=float):
    """(value, position) that max_pool's scan chooses in window ``o`` of ``plane``; the
    position is None for a window that sees only padding. ``value`` maps each element."""
    best, best_i = -np.inf, None
    for i in _window(o, kernel, stride, padding, dilation):
        if not _inside(i, plane.shape):
            continue
        v = value(plane[i])
        if best_i is None or v > best or np.isnan(v):
            best, best_i = v, i
    return best, best_i


def _avg_at(plane, o, kernel, stride, padding, count_include_pad, divisor_override,
            value=float):
    """(sum of ``value`` over window ``o``'s input positions, avg_pool's divisor)."""
    total, in_padded, inside = 0.0, 0, 0
    for i in _window(o, kernel, stride, padding, (1,) * len(kernel)):
        if all(-p <= ia < n + p for ia, n, p in zip(i, plane.shape, padding)):
            in_padded += 1
        if _inside(i, plane.shape):
            inside += 1
            total += value(plane[i])
    if divisor_override is not None:
        return total, divisor_override
    return total, in_padded if count_include_pad else inside


def _windows_reading(i, spatial, out, kernel, stride, padding, dilation):
    """The output positions whose windows read input position ``i``."""
    per_axis = []
    for ia, na, k, s, p, d in zip(i, out, kernel, stride, padding, dilation):
        per_axis.append([(ia + p - j * d) // s for j in range(k)
                         if (ia + p - j * d) % s == 0 and 0 <= (ia + p - j * d) // s < na])
    return itertools.product(*per_axis)


def max_pool_at(x, index, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """``max_pool(x, ...)[index]``, computed from that one window.

    >>> max_pool_at(np.array([[[1., 3., 2., 5., 4.]]]), (0, 0, 2), 3, stride=2, padding=1)
    5.0
    """
    x = np.asarray(x)
    shape = _check_shape(x.shape, x.dtype, "x")
    kernel, stride, padding, dilation, out = _geometry(
        shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    n, c, *o = _check_index(index, shape[:2] + out)
    return float(_max_at(x[n, c], tuple(o), kernel, stride, padding, dilation)[0])


def avg_pool_at(x, index, kernel_size, stride=None, padding=0, ceil_mode=False,
                count_include_pad=True, divisor_override=None):
    """``avg_pool(x, ...)[index]``, computed from that one window.

    >>> avg_pool_at(np.array([[[1., 3., 2., 5., 4.]]]), (0, 0, 2), 3, stride=2, padding=1,
    ...             count_include_pad=False)
    4.5
    """
    x = np.asarray(x)
    shape = _check_shape(x.shape, x.dtype, "x")
    count_include_pad = _check_bool(count_include_pad, "count_include_pad")
    divisor_override = _check_divisor(divisor_override)
    kernel, stride, padding, _, out = _geometry(shape[2:], kernel_size, stride, padding, 1,
                                                ceil_mode)
    n, c, *o = _check_index(index, shape[:2] + out)
    total, divisor = _avg_at(x[n, c], tuple(o), kernel, stride, padding, count_include_pad,
                             divisor_override)
    return total / divisor


def _power_sum_at(plane, o, kernel, stride, p):
    """lp_pool's ``v = (A / m) * sum of x**p`` over window ``o`` (no padding), float64."""
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        total, m = _avg_at(plane, o, kernel, stride, (0,) * len(kernel), True, None,
                           value=lambda v: np.float64(v) ** p)
        return int(np.prod(kernel)) * np.float64(total / m), m


def lp_pool_at(x, index, norm_type, kernel_size, stride=None, ceil_mode=False):
    """``lp_pool(x, ...)[index]``, computed from that one window.

    >>> lp_pool_at(np.array([[[3., 4., 1., 2., 2.]]]), (0, 0, 0), 2, 2)
    5.0
    """
    x = np.asarray(x)
    shape = _check_shape(x.shape, x.dtype, "x")
    p = _check_norm_type(norm_type)
    kernel, stride, padding, dilation, out = _geometry(shape[2:], kernel_size, stride, 0, 1,
                                                       ceil_mode)
    n, c, *o = _check_index(index, shape[:2] + out)
    o = tuple(o)
    if p in (np.inf, -np.inf):
        sign = 1.0 if p > 0 else -1.0
        best = _max_at(x[n, c], o, kernel, stride, padding, dilation,
                       value=lambda v: sign * abs(float(v)))[0]
        return float(sign * best)
    v, _ = _power_sum_at(x[n, c], o, kernel, stride, p)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return float(v ** (1.0 / p))


def max_pool_grad_at(dy, x, index, kernel_size, stride=None, padding=0, dilation=1,
                     ceil_mode=False, *, _value=float):
    """``max_pool_grad(dy, x, ...)[index]`` (an index into x): the dy of every window that
    reads this element and chose it.

    >>> x = np.array([[[2., 5., 5., 1., 5.]]])
    >>> max_pool_grad_at(np.array([[[10., 20., 30.]]]), x, (0, 0, 2), 3, stride=1)
    30.0
    """
    x, dy = np.asarray(x), np.asarray(dy)
    shape = _check_shape(x.shape, x.dtype, "x")
    kernel, stride, padding, dilation, out = _geometry(
        shape[2:], kernel_size, stride, padding, dilation, ceil_mode)
    _check_dy_shape(dy.shape, dy.dtype, shape[:2] + out)
    n, c, *i = _check_index(index, shape)
    i = tuple(i)
    total = 0.0
    for o in _windows_reading(i, shape[2:], out, kernel, stride, padding, dilation):
        if _max_at(x[n, c], o, kernel, stride, padding, dilation, _value)[1] == i:
            total += float(dy[(n, c, *o)])
    return total


def avg_pool_grad_at(dy, input_shape, index, kernel_size, stride=None, padding=0,
                     ceil_mode=False, count_include_pad=True, divisor_override=None):
    """``avg_pool_grad(dy, input_shape, ...)[index]``: dy / divisor summed over the windows
    that read this input position.

    >>> avg_pool_grad_at(np.array([[[6., 12., 18.]]]), (1, 1, 5), (0, 0, 3), 3, stride=2,
    ...                  padding=1)
    10.0
    """
    dy = np.asarray(dy)
    shape = _check_input_shape(input_shape)
    count_include_pad = _check_bool(count_include_pad, "count_include_pad")
    divisor_override = _check_divisor(divisor_override)
    kernel, stride, padding, _, out = _geometry(shape[2:], kernel_size, stride, padding, 1,
                                                ceil_mode)
    _check_dy_shape(dy.shape, dy.dtype, shape[:2] + out)
    n, c, *i = _check_index(index, shape)
    ones = np.zeros(shape[2:])  # only its shape is read: divisors depend on geometry alone
    total = 0.0
    for o in _windows_reading(tuple(i), shape[2:], out, kernel, stride, padding,
                              (1,) * len(kernel)):
        _, divisor = _avg_at(ones, o, kernel, stride, padding, count_include_pad,
                             divisor_override)
        total += float(dy[(n, c, *o)]) / divisor
    return total


def lp_pool_grad_at(dy, x, index, norm_type, kernel_size, stride=None, ceil_mode=False):
    """``lp_pool_grad(dy, x, ...)[index]`` (an index into x), the same formula as
    ``lp_pool_grad`` over the windows that read this element.

    >>> x = np.array([[[1., 3., 2., 5., 4.]]])
    >>> lp_pool_grad_at(np.ones((1, 1, 2)), x, (0, 0, 3), float("inf"), 2)
    1.0
    """
    x, dy = np.asarray(x), np.asarray(dy)
    shape = _check_shape(x.shape, x.dtype, "x")
    p = _check_norm_type(norm_type)
    kernel, stride, padding, dilation, out = _geometry(shape[2:], kernel_size, stride, 0, 1,
                                                       ceil_mode)
    _check_dy_shape(dy.shape, dy.dtype, shape[:2] + out)
    n, c, *i = _check_index(index, shape)
    xi = np.float64(x[(n, c, *i)])
    if p in (np.inf, -np.inf):
        sign = 1.0 if p > 0 else -1.0
        g = max_pool_grad_at(dy, x, index, kernel, stride, 0, 1, ceil_mode,
                             _value=lambda v: sign * abs(float(v)))
        return float(g * _sgn(xi))
    area = int(np.prod(kernel))
    window_sum = np.float64(0.0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for o in _windows_reading(tuple(i), shape[2:], out, kernel, stride, padding, dilation):
            v, m = _power_sum_at(x[n, c], o, kernel, stride, p)
            d = np.float64(dy[(n, c, *o)])
            g = 0.0 if v == 0 else d * (1.0 / p) * v ** (1.0 / p - 1.0) * _sgn(v) * _sgn(v)
            window_sum += area * g / m
        return float(window_sum * p * xi ** (p - 1.0))
