# strided_numpy: pooling as one pass per kernel offset over strided views of the padded input.
#
#   xp = pad(x)   (-inf for max, 0 for sums; the high side also covers a ceil_mode overhang)
#   w  = sliding_window_view(xp, dilated span)[..., ::stride, ..., ::dilation]
#        shape (N, C, *out, *kernel), a view: no copy
#   tap j = w[..., j]  = xp[j*d : j*d + (out-1)*s + 1 : s]  (one strided view per offset)
#
#   max  y = fmax/maximum over taps      avg  y = (sum over taps) / divisor
#   lp   y = (A/m * sum over taps of x**p) ** (1/p)
#   grads: scatter back through the SAME taps of a zero padded gradient, one offset at a
#   time (for a fixed offset no two outputs share an input position, so `tap += g` is
#   a plain vectorised add, no np.add.at), then cut the padding off.
#
# Ties (max_pool_grad, lp_pool_grad with p = +-inf) follow torch, as refimpl.pool writes it:
#   pass 1: m = fmax over taps (NaN ignored), and the LAST tap holding a NaN;
#   pass 2: the FIRST tap, in row-major kernel order, holding m at an input position
#   (padding never wins, even against an input -inf). A window with a NaN takes its last
#   NaN; a window that sees only padding passes no gradient.
# Not a reduction over the whole (N, C, *out, *kernel) window view (w.max(axis=...)):
# numpy reduces tiny strided axes slowly (14x slower on the ResNet stem pool), while each
# tap is one long vectorised operation.
#
# Wins: needs only numpy; close to memory bandwidth for small kernels (K passes).
# Does not win: large kernels (K passes over the output: a 7x7 global pool is 49 passes),
#   and against torch's fused, multi-threaded kernels on big activations.
# Applies: every case (1-3 spatial axes, any padding/dilation/ceil_mode, every option).
# Does not apply: bfloat16 (numpy has no such dtype; pool_torch takes those tensors).
# Numerics: max is exact; sums accumulate in the result type (float32 for float16, which
#   is rounded once at the end): the 'direct' bound. lp's powers use the compute type's
#   pow with the exponent rounded to that type, as torch does.
from __future__ import annotations

import numpy as np

from candidates.runtime import extend
from refimpl.dtypes import compute_dtype
from refimpl.geometry import as_tuple, pool_output_shape

LIBRARY = "numpy"
DEVICE = "cpu"


def ERROR(spec):
    """max_pool and lp_pool with p = +-inf only compare: exact. Everything else sums."""
    if spec.op == "max_pool":
        return "exact"
    if spec.op == "lp_pool" and spec.kwargs["norm_type"] in (np.inf, -np.inf):
        return "exact"
    return "direct"


NONFINITE = True   # NaN/Inf in a window: the oracle's max, mean or p-norm of it

def supports(spec):
    if "bfloat16" in spec.dtypes:
        return "numpy has no bfloat16 (pool_torch takes bfloat16 tensors)"
    return None


# ---------------------------------------------------------------------------------------
# Geometry and strided views
# ---------------------------------------------------------------------------------------

class _Geometry:
    """Per-axis kernel, stride, padding, dilation, output size and the padded extent."""

    def __init__(self, shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        nsp = len(shape) - 2
        self.shape = tuple(shape)
        self.kernel = as_tuple(kernel_size, nsp, "kernel_size")
        self.stride = self.kernel if stride is None else as_tuple(stride, nsp, "stride")
        self.padding = as_tuple(padding, nsp, "padding")
        self.dilation = as_tuple(dilation, nsp, "dilation")
        self.out = pool_output_shape(shape[2:], self.kernel, self.stride, self.padding,
                                     self.dilation, ceil_mode)
        # high side: as far as the last window reaches (padding, or a ceil_mode overhang)
        self.pads = [(p, max(0, (o - 1) * s - p + (k - 1) * d + 1 - n))
                     for n, k, s, p, d, o in zip(shape[2:], self.kernel, self.stride,
                                                 self.padding, self.dilation, self.out)]
        self.area = int(np.prod(self.kernel))

    def pad(self, a, value):
        return extend(a, [(0, 0)] * (a.ndim - len(self.pads)) + self.pads, "constant", value)

    def unpad(self, a):
        return a[(..., *[slice(lo, lo + n) for (lo, _), n in zip(self.pads, self.shape[2:])])]

    def taps(self, padded, writeable=False):
        """(offset number, strided view of shape (..., *out)) for every kernel offset, in
        row-major order over the kernel."""
        nsp = len(self.kernel)
        spans = [(k - 1) * d + 1 for k, d in zip(self.kernel, self.dilation)]
        axes = tuple(range(padded.ndim - nsp, padded.ndim))
        w = np.lib.stride_tricks.sliding_window_view(padded, spans, axis=axes,
                                                     writeable=writeable)
        w = w[(..., *[slice(0, (o - 1) * s + 1, s) for o, s in zip(self.out, self.stride)],
               *[slice(None, None, d) for d in self.dilation])]
        for t, j in enumerate(np.ndindex(*self.kernel)):
            yield t, w[(..., *j)]

    def counts(self, include_pad: bool):
        """Per output position, the window positions inside the input (or inside the
        padded input): a product of per-axis counts, shaped to broadcast over (*out)."""
        total = np.ones((), dtype=np.int64)
        for a, (n, k, s, p, o) in enumerate(zip(self.shape[2:], self.kernel, self.stride,
                                                self.padding, self.out)):
            start = np.arange(o) * s - p
            end = start + k
            if include_pad:
                c = np.minimum(end, n + p) - start
            else:
                c = np.minimum(end, n) - np.maximum(start, 0)
            total = total[..., None] * c if a else c
        return total


def _sgn(a):
    """torch's sign: 0 at 0 and at NaN (numpy's sign gives NaN there)."""
    return np.where(a > 0, 1, np.where(a < 0, -1, 0)).astype(a.dtype)


def _max_forward(x, g):
    xp = g.pad(x, -np.inf)
    y = None
    for _, tap in g.taps(xp):
        y = tap.copy() if y is None else np.maximum(y, tap, out=y)   # NaN propagates
    return y


def _choice(x, g):
    """The kernel offset each window's max takes (torch's rule, see the header), -1 for a
    window that sees only padding."""
    xp = g.pad(x, -np.inf)
    valid = g.pad(np.ones(g.shape[2:], dtype=bool), False)
    m = np.full(x.shape[:2] + g.out, -np.inf, dtype=x.dtype)
    last_nan = np.full(m.shape, -1, dtype=np.int64)
    for t, tap in g.taps(xp):
        np.fmax(m, tap, out=m)
        last_nan[np.isnan(tap)] = t
    found = last_nan >= 0
    choice = last_nan.copy()
    for (t, tap), (_, inside) in zip(g.taps(xp), g.taps(valid)):
        hit = ~found & (tap == m) & inside
        choice[hit] = t
        found |= hit
    return choice


def _scatter(per_tap, g, shape, dtype):
    """Sum per_tap(t) (an (N, C, *out) array or None) back over every tap's positions."""
    grad = np.zeros(shape[:2] + tuple(n + lo + hi for n, (lo, hi) in zip(shape[2:], g.pads)),
                    dtype=dtype)
    for t, tap in g.taps(grad, writeable=True):
        contribution = per_tap(t)
        if contribution is not None:
            tap += contribution
    return g.unpad(grad)


# ---------------------------------------------------------------------------------------
# max_pool
# ---------------------------------------------------------------------------------------

def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    g = _Geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return _max_forward(x, g)


def _max_grad(dy, x, g, out_dtype):
    acc = compute_dtype(out_dtype)
    choice = _choice(x, g)
    dy = dy.astype(acc, copy=False)
    zero = np.zeros((), dtype=acc)

    def per_tap(t):
        hit = choice == t
        return np.where(hit, dy, zero) if hit.any() else None

    return _scatter(per_tap, g, x.shape, acc).astype(out_dtype)


def max_pool_grad(dy, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    g = _Geometry(x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    return _max_grad(dy, x, g, np.result_type(dy, x))


# ---------------------------------------------------------------------------------------
# avg_pool
# ---------------------------------------------------------------------------------------

def _divisor(g, count_include_pad, divisor_override, acc):
    if divisor_override is not None:
        return np.asarray(divisor_override, dtype=acc)
    return g.counts(count_include_pad).astype(acc)


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None):
    g = _Geometry(x.shape, kernel_size, stride, padding, 1, ceil_mode)
    acc = compute_dtype(x.dtype)
    xp = g.pad(x.astype(acc, copy=False), 0)
    total = None
    for _, tap in g.taps(xp):
        total = tap.copy() if total is None else np.add(total, tap, out=total)
    return (total / _divisor(g, count_include_pad, divisor_override, acc)).astype(x.dtype)


def avg_pool_grad(dy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                  count_include_pad=True, divisor_override=None):
    g = _Geometry(tuple(input_shape), kernel_size, stride, padding, 1, ceil_mode)
    acc = compute_dtype(dy.dtype)
    share = dy.astype(acc, copy=False) / _divisor(g, count_include_pad, divisor_override, acc)
    return _scatter(lambda t: share, g, tuple(input_shape), acc).astype(dy.dtype)


# ---------------------------------------------------------------------------------------
# lp_pool: (A/m * sum of x**p) ** (1/p), m = window positions inside the input
# ---------------------------------------------------------------------------------------

def _power_sums(xa, p, g):
    """v = A/m * sum over the window of x**p (the ceil_mode overhang contributes nothing),
    and A/m, in xa's type."""
    powered = g.pad(xa ** xa.dtype.type(p), 0)
    total = None
    for _, tap in g.taps(powered):
        total = tap.copy() if total is None else np.add(total, tap, out=total)
    m = g.counts(False).astype(xa.dtype)
    return total / m * xa.dtype.type(g.area), xa.dtype.type(g.area) / m


def lp_pool(x, norm_type, kernel_size, stride=None, ceil_mode=False):
    g = _Geometry(x.shape, kernel_size, stride, 0, 1, ceil_mode)
    p = float(norm_type)
    if p in (np.inf, -np.inf):
        sign = 1 if p > 0 else -1
        return sign * _max_forward(sign * np.abs(x), g)
    acc = compute_dtype(x.dtype)
    with np.errstate(all="ignore"):
        v, _ = _power_sums(x.astype(acc, copy=False), p, g)
        return (v ** acc.type(1.0 / p)).astype(x.dtype)


def lp_pool_grad(dy, x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """torch autograd through ``(sign(v) * relu(|v|)) ** (1/p)``, as refimpl.pool writes
    it: a window whose power sum is 0 passes nothing; sgn(v)**2 is 0 at a NaN sum."""
    g = _Geometry(x.shape, kernel_size, stride, 0, 1, ceil_mode)
    out_dtype = np.result_type(dy, x)
    p = float(norm_type)
    if p in (np.inf, -np.inf):
        sign = 1 if p > 0 else -1
        dx = _max_grad(dy, sign * np.abs(x), g, compute_dtype(out_dtype))
        return (dx * _sgn(x.astype(dx.dtype, copy=False))).astype(out_dtype)
    acc = compute_dtype(out_dtype)
    f = acc.type
    xa = x.astype(acc, copy=False)
    with np.errstate(all="ignore"):
        v, scale = _power_sums(xa, p, g)
        s = _sgn(v)
        dv = dy.astype(acc, copy=False) * f(1.0 / p) * v ** f(1.0 / p - 1.0) * s * s
        dv = np.where(v == 0, f(0), dv) * scale      # d/dv, times A/m: d/d(window sum)
        window_sum = _scatter(lambda t: dv, g, x.shape, acc)
        return (window_sum * f(p) * xa ** f(p - 1.0)).astype(out_dtype)
