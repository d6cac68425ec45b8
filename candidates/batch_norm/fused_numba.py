# fused_numba: batch normalisation in blocks: statistics in one pass, normalisation in one;
#   the gradient in two (reduce, then dx), compiled with numba.
#
#   x is read as rows of one channel each: planes (N, C, S), S = prod(spatial), for
#   contiguous x (row (n, c) = S contiguous values), or (R, C) rows across the channels
#   for channels-last x and BatchNorm1d's (N, C) (R = N * S; the channels are the lanes).
#   A row (or a band of rows) is cut into blocks that stay in L1 (BLOCK values):
#
#     pass 1 (statistics; the gradient's reduce pass)   read x (and dy) once
#       per block b:  s_b = sum x        m_b = s_b / n_b     q_b = sum (x - m_b)**2
#                     gradient: D_b = sum dy, P_b = sum dy (x - m_b)   (with q_b: one more
#                     sweep of the block, in L1)
#       per channel:  mean = sum s_b / M                 (the plain sum: IEEE's NaN/Inf)
#                     var  = sum [q_b + n_b (m_b - mean)**2] / M     (exact regrouping of
#                            sum (x - mean)**2: every term >= 0, no cancellation)
#                     S1 = sum D_b,  S2 = r sum [P_b + (m_b - mean) D_b]
#     pass 2          y  = (x - mean) * (r w) + b                       read x, write y
#                     dx = (w r / M) ((M dy - S1) - ((x - mean) r) S2)   read x, dy, write dx
#                          (eval: dx = dy (r w); the oracle's grouping, so NaN and Inf
#                          land where it puts them)
#
#   Threads: bands of rows (planes: (n, c) rows; (R, C): blocks of rows) handed out by
#   candidates.runtime.run_jobs to nogil kernels; per-block sums go to arrays that numpy
#   combines per channel (a few hundred values a channel). (R, C) blocks are >= 32 rows
#   and ~256 KiB (L2): with 2-row blocks BatchNorm1d (256, 1024) spent its time on the
#   block arrays (5 MB) and ran 5x slower than torch on one thread.
# Wins: large activations (seed-batchnorm (10, 100, 224, 224) float32, ResNet's
#   (N, 64, 56, 56)): the data is read 2 times forward and 4 backward with the training
#   statistics recomputed inside the reduce pass (no saved tensors needed).
# Does not win: tiny inputs (numba dispatch and the block arrays cost ~20 us); C = 1 with
#   small N still runs on one thread per row.
# Applies: float16, float32, float64; 0-3 spatial axes; any strides (other layouts than
#   contiguous and channels-last are copied to contiguous first). Does not apply: bfloat16
#   (numpy has none; batch_norm_torch computes it).
# Numerics: the statistics and reductions accumulate in float64 (8 partial sums a block);
#   the elementwise passes run in float32 (float64 for float64 input); float16 is
#   converted to float32 and the results rounded once. Error model 'direct' with the
#   op's scale (convbench/ops/batch_norm.py: the variance's cancellation and the
#   statistics' propagation); fastmath off. NaN/Inf propagate per channel as the oracle's
#   (a channel holding NaN or Inf gives NaN statistics), except that an Inf in dy meeting
#   an x within rounding of the mean may give Inf where the oracle gives NaN.
from __future__ import annotations

import functools
import threading

import numpy as np

from candidates.runtime import threads

LIBRARY = "numba"
DEVICE = "cpu"
ERROR = "direct"
NONFINITE = True

BLOCK = 2048                 # values of one row per block (x and dy: 16 KiB in L1)
ROW_BLOCK_BYTES = 262144     # (R, C) layout: a block of rows stays in L2 (~256 KiB of x)
ROW_BLOCK_MIN = 32           # rows per block at least: the per-block sums stay small
JOBS_PER_THREAD = 16
LANES = 64                   # partial sums of a block (float64, vectorised)


def supports(spec):
    if "bfloat16" in spec.dtypes:
        return "numpy has no bfloat16 (batch_norm_torch computes it)"
    return None


# ------------------------------------------------------------------------ numba kernels

def _sum_lanes(a, j0, j1, acc):
    """sum a[j0:j1] in float64: LANES partial sums (acc, scratch), then the tail. The lanes
    are a loop of runtime length that LLVM vectorises without reassociating anything (a
    fixed 8 would be unrolled and left scalar: numba runs no SLP vectoriser); unsigned
    indices drop the negative-index wraparound code."""
    w = _U(acc.size)
    for l in range(w):
        acc[l] = 0.0
    j, end = _U(j0), _U(j1)
    while j + w <= end:
        for l in range(w):
            acc[l] += a[j + l]
        j += w
    total = 0.0
    while j < end:
        total += a[j]
        j += _U(1)
    for l in range(w):
        total += acc[l]
    return total


def _squares_lanes(a, j0, j1, m, acc):
    """sum (a[j0:j1] - m)**2 in float64, as _sum_lanes."""
    w = _U(acc.size)
    for l in range(w):
        acc[l] = 0.0
    j, end = _U(j0), _U(j1)
    while j + w <= end:
        for l in range(w):
            d = a[j + l] - m
            acc[l] += d * d
        j += w
    total = 0.0
    while j < end:
        d = a[j] - m
        total += d * d
        j += _U(1)
    for l in range(w):
        total += acc[l]
    return total


def _squares_cross_lanes(a, d, j0, j1, m, acc, acc2, acc3):
    """(sum (a - m)**2, sum d, sum d * (a - m)) over [j0, j1) in float64, as _sum_lanes:
    the gradient's block in one sweep."""
    w = _U(acc.size)
    for l in range(w):
        acc[l] = 0.0
        acc2[l] = 0.0
        acc3[l] = 0.0
    j, end = _U(j0), _U(j1)
    while j + w <= end:
        for l in range(w):
            c = a[j + l] - m
            e = d[j + l] * 1.0
            acc[l] += c * c
            acc2[l] += e
            acc3[l] += e * c
        j += w
    q = t = p = 0.0
    while j < end:
        c = a[j] - m
        e = d[j] * 1.0
        q += c * c
        t += e
        p += e * c
        j += _U(1)
    for l in range(w):
        q += acc[l]
        t += acc2[l]
        p += acc3[l]
    return q, t, p


def _plane_stats(r0, r1, x, dy, counts, sums, squares, dsums, cross, block):
    """Pass 1 on planes x (N*C, S): per row r in [r0, r1) and block k, the block's count,
    sum, squares about its mean and (dy given, size > 0) dy's sum and cross term."""
    s = x.shape[1]
    acc, acc2, acc3 = np.empty(LANES), np.empty(LANES), np.empty(LANES)
    gradient = dy.size > 0
    for r in range(r0, r1):
        row = x[r]
        k = 0
        for j0 in range(0, s, block):
            j1 = min(j0 + block, s)
            n = j1 - j0
            total = _sum_lanes(row, j0, j1, acc)
            m = total / n
            counts[r, k] = n
            sums[r, k] = total
            if gradient:
                squares[r, k], dsums[r, k], cross[r, k] = _squares_cross_lanes(
                    row, dy[r], j0, j1, m, acc, acc2, acc3)
            else:
                squares[r, k] = _squares_lanes(row, j0, j1, m, acc)
            k += 1


def _row_stats(b0, b1, x, dy, counts, sums, squares, dsums, cross, rows):
    """Pass 1 on (R, C) rows: per block k in [b0, b1) of ``rows`` rows, per channel the
    same quantities as _plane_stats (arrays (blocks, C)); the channels are the lanes."""
    r_all, c_all = x.shape
    w = _U(c_all)
    gradient = dy.shape[0] > 0
    for k in range(b0, b1):
        i0 = k * rows
        i1 = min(i0 + rows, r_all)
        n = i1 - i0
        s, q, t, p = sums[k], squares[k], dsums[k], cross[k]
        for c in range(w):
            s[c] = 0.0
            q[c] = 0.0
            t[c] = 0.0
            p[c] = 0.0
            counts[k, c] = n
        for i in range(i0, i1):
            xr = x[i]
            for c in range(w):
                s[c] += xr[c]
        for c in range(w):
            counts[k, c] = s[c] / n          # the block mean, until the end of the block
        m = counts[k]
        for i in range(i0, i1):
            xr = x[i]
            for c in range(w):
                d = xr[c] - m[c]
                q[c] += d * d
        if gradient:
            for i in range(i0, i1):
                xr, dr = x[i], dy[i]
                for c in range(w):
                    e = dr[c] * 1.0
                    t[c] += e
                    p[c] += e * (xr[c] - m[c])
        for c in range(w):
            counts[k, c] = n


def _plane_affine(r0, r1, x, y, channels, shift, scale, offset):
    """y = (x - shift[c]) * scale[c] + offset[c] on planes (row r is channel r % C)."""
    s = x.shape[1]
    for r in range(r0, r1):
        c = r % channels
        a, m, b = scale[c], shift[c], offset[c]
        xr, yr = x[r], y[r]
        for j in range(_U(s)):
            yr[j] = (xr[j] - m) * a + b


def _row_affine(b0, b1, x, y, shift, scale, offset, rows):
    r_all, c_all = x.shape
    w = _U(c_all)
    for i in range(b0 * rows, min(b1 * rows, r_all)):
        xr, yr = x[i], y[i]
        for c in range(w):
            yr[c] = (xr[c] - shift[c]) * scale[c] + offset[c]


def _plane_grad(r0, r1, x, dy, dx, channels, mean, r, s1, s2, coef, m):
    """dx = coef ((m dy - s1) - ((x - mean) r) s2) on planes."""
    s = x.shape[1]
    for row in range(r0, r1):
        c = row % channels
        mu, rc, a1, a2, k = mean[c], r[c], s1[c], s2[c], coef[c]
        xr, dr, out = x[row], dy[row], dx[row]
        for j in range(_U(s)):
            out[j] = k * ((m * dr[j] - a1) - ((xr[j] - mu) * rc) * a2)


def _row_grad(b0, b1, x, dy, dx, mean, r, s1, s2, coef, m, rows):
    r_all, c_all = x.shape
    w = _U(c_all)
    for i in range(b0 * rows, min(b1 * rows, r_all)):
        xr, dr, out = x[i], dy[i], dx[i]
        for c in range(w):
            out[c] = coef[c] * ((m * dr[c] - s1[c]) - ((xr[c] - mean[c]) * r[c]) * s2[c])


def _U(i):
    """An unsigned index (numba's uint64 inside the kernels)."""
    return i


_NUMBA_FUNCTIONS = ("_sum_lanes", "_squares_lanes", "_squares_cross_lanes", "_plane_stats",
                    "_row_stats", "_plane_affine", "_row_affine", "_plane_grad", "_row_grad")
_KERNELS = {}
_setup_lock = threading.Lock()


def _kernels():
    """The compiled kernels (numba jit on the first call, from the disk cache later)."""
    with _setup_lock:
        if not _KERNELS:
            import numba

            module = globals()
            module["_U"] = numba.uint64
            compiled = {}
            for name in _NUMBA_FUNCTIONS:
                compiled[name] = numba.njit(cache=True, nogil=True, fastmath=False)(module[name])
                module[name] = compiled[name]
            _KERNELS.update(compiled)
    return _KERNELS


def _run(kernel, n_items: int, args, work: int) -> None:
    """kernel(i0, i1, *args) over items 0 .. n_items - 1, in chunks on the threads that
    the caller allows (one thread for small work)."""
    from candidates.runtime import run_jobs

    workers = threads() if work >= 1 << 16 else 1
    chunks = max(1, min(n_items, JOBS_PER_THREAD * workers))
    bounds = [n_items * i // chunks for i in range(chunks + 1)]
    run_jobs([functools.partial(kernel, bounds[i], bounds[i + 1], *args)
              for i in range(chunks) if bounds[i + 1] > bounds[i]], workers)


# ------------------------------------------------------------------------ layouts

class _Layout:
    """x (and dy) as planes (N*C, S) or rows (R, C), and how to make an output like x."""

    def __init__(self, x, compute):
        n, c = x.shape[0], x.shape[1]
        self.channels, self.shape = c, x.shape
        s = int(np.prod(x.shape[2:], dtype=np.int64))
        self.per_channel = n * s
        cl = np.moveaxis(x, 1, -1)
        if x.ndim > 2 and s > 1 and x.flags.c_contiguous:
            self.kind, self.order = "planes", None
        elif x.ndim == 2 or s == 1 or cl.flags.c_contiguous:
            self.kind, self.order = "rows", "channels last"
        else:
            self.kind, self.order = "planes", None
        self.compute = compute

    def view(self, a):
        """``a`` (shaped like x) as the kernels read it, in the compute dtype (a copy only
        for another layout or dtype)."""
        a = a.astype(self.compute, copy=False)
        if self.kind == "planes":
            a = np.ascontiguousarray(a)
            return a.reshape(a.shape[0] * a.shape[1], -1)
        a = np.ascontiguousarray(np.moveaxis(a, 1, -1))
        return a.reshape(-1, self.channels)

    def empty(self):
        """A new output in the compute dtype: (its kernel view, the array shaped like x)."""
        if self.kind == "planes":
            out = np.empty(self.shape, self.compute)
            return out.reshape(self.shape[0] * self.channels, -1), out
        cl_shape = (self.shape[0],) + self.shape[2:] + (self.channels,)
        out = np.empty(cl_shape, self.compute)
        return out.reshape(-1, self.channels), np.moveaxis(out, -1, 1)


def _compute_dtype(dtype) -> np.dtype:
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _block_sums(layout, xv, dyv):
    """Pass 1: per-block (counts, sums, squares, dsums, cross), channel axis last after
    a transpose for planes: arrays (blocks, C)."""
    k = _kernels()
    gradient = dyv is not None
    empty_dy = np.empty((0, 0), xv.dtype)
    if layout.kind == "planes":
        rows, s = xv.shape
        nb = -(-s // BLOCK)
        arrays = [np.zeros((rows, nb)) for _ in range(5)]
        _run(k["_plane_stats"], rows, (xv, dyv if gradient else empty_dy, *arrays, BLOCK), xv.size)
        c = layout.channels
        # row r = (n, c): to (n * nb blocks, C)
        return [a.reshape(-1, c, nb).transpose(0, 2, 1).reshape(-1, c) for a in arrays]
    r_all, c = xv.shape
    rows = _rows_per_block(layout, xv)
    nb = -(-r_all // rows)
    arrays = [np.empty((nb, c)) for _ in range(5)]
    _run(k["_row_stats"], nb, (xv, dyv if gradient else empty_dy, *arrays, rows), xv.size)
    return arrays


def _statistics(counts, sums, squares, m):
    """Per channel (mean, biased var) from the blocks: mean = sum s_b / M (IEEE's NaN and
    Inf), var = sum [q_b + n_b (m_b - mean)**2] / M."""
    with np.errstate(all="ignore"):
        mean = sums.sum(axis=0) / m
        block_means = sums / counts
        var = (squares + counts * (block_means - mean) ** 2).sum(axis=0) / m
    return mean, var


def _channel(layout, v, c) -> np.ndarray:
    """Channel ``c``'s values of a kernel view, float64."""
    if layout.kind == "planes":
        return v[c::layout.channels].astype(np.float64).ravel()
    return v[:, c].astype(np.float64)


def _rows_per_block(layout, xv) -> int:
    return max(ROW_BLOCK_MIN, ROW_BLOCK_BYTES // (xv.itemsize * xv.shape[1]))


def _affine(layout, xv, shift, scale, offset):
    """y = (x - shift) * scale + offset per channel, as an array shaped like x."""
    k = _kernels()
    yv, y = layout.empty()
    dt = layout.compute
    shift, scale, offset = (np.ascontiguousarray(v, dtype=dt) for v in (shift, scale, offset))
    if layout.kind == "planes":
        _run(k["_plane_affine"], xv.shape[0], (xv, yv, layout.channels, shift, scale, offset),
             xv.size)
    else:
        rows = _rows_per_block(layout, xv)
        nb = -(-xv.shape[0] // rows)
        _run(k["_row_affine"], nb, (xv, yv, shift, scale, offset, rows), xv.size)
    return y


# ------------------------------------------------------------------------ the ops

def batch_norm(x, running_mean, running_var, weight, bias, training=False, momentum=0.1,
               eps=1e-5):
    """(y, new_running_mean, new_running_var); y in x's dtype, the statistics in theirs."""
    out_dtype = x.dtype
    layout = _Layout(x, _compute_dtype(x.dtype))
    xv = layout.view(x)
    w = np.asarray(weight, dtype=np.float64)
    b = np.asarray(bias, dtype=np.float64)
    rm = np.asarray(running_mean, dtype=np.float64)
    rv = np.asarray(running_var, dtype=np.float64)
    m = layout.per_channel
    with np.errstate(all="ignore"):
        if training:
            counts, sums, squares, _, _ = _block_sums(layout, xv, None)
            mean, var = _statistics(counts, sums, squares, m)
        else:
            mean, var = rm, rv
        r = 1.0 / np.sqrt(var + eps)
        y = _affine(layout, xv, mean, r * w, b)
        if training:
            new_mean = (1 - momentum) * rm + momentum * mean
            new_var = (1 - momentum) * rv + momentum * var * m / (m - 1)
        else:
            new_mean, new_var = rm, rv
    return (y.astype(out_dtype, copy=False),
            new_mean.astype(running_mean.dtype), new_var.astype(running_var.dtype))


def batch_norm_grad(dy, x, running_mean, running_var, weight, training=False, eps=1e-5):
    """(dx, dweight, dbias) of sum(batch_norm(x)[0] * dy); training recomputes the batch
    statistics inside the reduce pass."""
    out_dtype = x.dtype
    layout = _Layout(x, _compute_dtype(np.result_type(x.dtype, dy.dtype)))
    xv, dyv = layout.view(x), layout.view(dy)
    w = np.asarray(weight, dtype=np.float64)
    m = layout.per_channel
    k = _kernels()
    with np.errstate(all="ignore"):
        counts, sums, squares, dsums, cross = _block_sums(layout, xv, dyv)
        if training:
            mean, var = _statistics(counts, sums, squares, m)
        else:
            mean = np.asarray(running_mean, dtype=np.float64)
            var = np.asarray(running_var, dtype=np.float64)
        r = 1.0 / np.sqrt(var + eps)
        s1 = dsums.sum(axis=0)
        s2 = r * (cross + (sums / counts - mean) * dsums).sum(axis=0)
        for c in np.flatnonzero(~np.isfinite(s2)):
            # NaN/Inf: regrouped about the block means, an Inf may change sign; the
            # oracle's own grouping places them
            xc, dc = _channel(layout, xv, c), _channel(layout, dyv, c)
            s2[c] = np.sum(dc * (xc - mean[c]) * r[c])
        if training:
            coef = w * r / m
            dxv, dx = layout.empty()
            dt = layout.compute
            args = [np.ascontiguousarray(v, dtype=dt) for v in (mean, r, s1, s2, coef)]
            if layout.kind == "planes":
                _run(k["_plane_grad"], xv.shape[0],
                     (xv, dyv, dxv, layout.channels, *args, dt.type(m)), xv.size)
            else:
                rows = _rows_per_block(layout, xv)
                nb = -(-xv.shape[0] // rows)
                _run(k["_row_grad"], nb, (xv, dyv, dxv, *args, dt.type(m), rows), xv.size)
        else:
            dx = _affine(layout, dyv, np.zeros_like(r), r * w, np.zeros_like(r))
    wd = np.asarray(weight).dtype
    return dx.astype(out_dtype, copy=False), s2.astype(wd), s1.astype(wd)
