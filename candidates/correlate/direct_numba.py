# direct_numba: tiled, multithreaded direct correlation (numba), for small kernels and
# integer images.
#
#   output split into tiles of TILE_ROWS rows x TILE_COLS columns (and a batch of planes):
#
#     tile input (TILE_ROWS + kh - 1) x (TILE_COLS + kw - 1), read from x through the
#     border rule (index maps per axis, -1 = cval): --converted once--> buf (acc type)
#     for each output row i of the tile:          acc[0:cols] = 0              (L1)
#         for the taps, 8 (then 4, then 1) at a time:
#             acc[j] += (c0 buf[i+l0, j+k0] + c1 buf[i+l1, j+k1]) + (...)   j = 0 .. cols-1
#         write the row: out[i, j] = convert(acc[j])   (scale, round half to even,
#                                                        saturate: fused, no extra pass)
#
# The border is applied while building each tile's buf (no padded copy of the image: on
#   4096^2 float32 np.pad alone cost about as much as a 3x3 filter). The innermost loop
#   runs along the output row (contiguous, no dependence between j): LLVM vectorises it;
#   acc and the tile's input stay in L1/L2; grouping taps loads and stores acc once per
#   group instead of once per tap (1.8x on 3x3..7x7).
# Threads: the tiles are cut into chunks handed out from a shared counter to
#   candidates.runtime.threads() threads (the caller works too) running the nogil numba
#   kernel. Not numba's prange: on this loaded 2-core machine its OpenMP layer's
#   end-of-loop barrier made 2 threads 10-30x slower than 1 (a thread whose core is taken
#   by another process holds everyone up); with dynamic chunks a late thread holds up only
#   the chunk it took. Compiled on the first call per dtype combination (seconds; the
#   harness warms up before timing), cached on disk (cache=True) for later processes.
# Numerics (two accumulators):
#   exact  integer images (uint8, int8, uint16, int16) with a kernel w = c * n, n integers
#          and c one float (integer kernels: c = 1; box filters: n = 1, c = 1/K; binomial
#          filters ...): S = sum n_t x_t accumulated in int32 (int64 when max|x| * sum|n|
#          would not fit), exactly; y = c * S in float64, then rounded once to the result
#          dtype, or rounded half to even and saturated for an integer out_dtype. Zero taps
#          are skipped (integers are finite).
#   float  everything else: float32 for float32/float16/integer images with a float32
#          kernel, float64 when the result is float64; each output is a K-term sum in some
#          fixed order (groups of 8 and 4 added to acc), at most K roundings per product:
#          the 'direct' bound gamma_K (|x| (*) |w|). float16 results are rounded once at
#          the end. Zero taps are skipped unless the tile holds a NaN or Inf (0 * inf is
#          NaN in the oracle). The per-output order does not depend on the thread count.
#   The exact path satisfies the same model (its only roundings are c * n_t = w_t when w is
#   float64, and the final one): ERROR is 'direct'.
# Wins: 5x5..15x15 kernels on float32/float64 images (on par with filter2D at 5x5, ahead
#   from 7x7 up to the FFT crossover), uint8 images with integer or box kernels (exact,
#   fused round-and-saturate: 3-5x faster than filter2D on 1024^2 uint8 box filters here),
#   every border at the same speed (wrap, constant with cval != 0 included).
# Does not win: kernels above ~11x11 (cost K per pixel: FFT or separable passes are
#   cheaper), tiny images (thread hand-off), OpenCV's IPP paths for 3x3 float32 and 1x31
#   (1.4-2x faster than this on 1024^2), where OpenCV stays the better choice.
# Does not apply: kernels with more than two non-trivial axes (length-1 kernel axes are
#   batch axes: (H, W, C) images with (kh, kw, 1) kernels are fine), more than MAX_TAPS
#   taps (refused: an FFT or separable route is an order of magnitude faster there),
#   complex and bfloat16 dtypes.
from __future__ import annotations

import functools
import math
import threading

import numpy as np

from candidates.runtime import KernelCache
from refimpl.dtypes import compute_dtype, result_dtype
from refimpl.geometry import image_output_shape, image_padding
from refimpl.pad import source_indices

LIBRARY = "numba"
DEVICE = "cpu"
ERROR = "direct"
NONFINITE = True
EXACT_INT_BITS = 24   # integer sums in float32 (integer-valued, so exact up to 2**24)

MAX_TAPS = 1024
TILE_ROWS = 16
TILE_COLS = 2048
TILE_BYTES = 128 * 1024
CHUNKS_PER_THREAD = 4
PARALLEL_MIN_WORK = 1 << 18     # multiply-adds below which one thread does it all
_EXACT_INPUTS = {"uint8": 255, "int8": 128, "uint16": 65535, "int16": 32768}
_kernel = None


def supports(spec):
    for d in spec.dtypes:
        if d == "bfloat16" or d.startswith("complex"):
            return f"dtype {d} is not run through numba here"
    w_shape = spec.shapes[1]
    if sum(k > 1 for k in w_shape) > 2:
        return "direct_numba filters along at most two axes (the other kernel axes must be 1)"
    if math.prod(w_shape) > MAX_TAPS:
        return f"kernel has more than {MAX_TAPS} taps (FFT or separable routes are faster)"
    return None


# The numba functions: plain Python source at module level, compiled on first use by
# _compile() (importing this module does not import numba). They call each other through
# module globals, which _compile() rebinds to the compiled dispatchers, so the on-disk
# cache (cache=True) finds them again in a new process (closures over dispatchers would
# miss it and recompile every time).


def _row_sum(plane, rb, cb, rows, cols, vals, ntaps, acc, nc):
    """acc[0:nc] = sum over taps q < ntaps of vals[q] * plane[rb + rows[q], cb + cols[q] + j].
    Taps go 8, then 4, then 1 at a time: one load and store of acc per group (1.8x over
    one tap at a time on 3x3..7x7; an assigning first group and 2-tap groups measured
    slower). Slices indexed from 0 by the range variable keep numba's negative-index test
    out of the loops, which would stop LLVM from vectorising them."""
    for j in range(nc):
        acc[j] = 0
    q = 0
    while q + 8 <= ntaps:
        c0, c1, c2, c3 = vals[q], vals[q + 1], vals[q + 2], vals[q + 3]
        c4, c5, c6, c7 = vals[q + 4], vals[q + 5], vals[q + 6], vals[q + 7]
        a0 = plane[rb + rows[q], cb + cols[q]:cb + cols[q] + nc]
        a1 = plane[rb + rows[q + 1], cb + cols[q + 1]:cb + cols[q + 1] + nc]
        a2 = plane[rb + rows[q + 2], cb + cols[q + 2]:cb + cols[q + 2] + nc]
        a3 = plane[rb + rows[q + 3], cb + cols[q + 3]:cb + cols[q + 3] + nc]
        a4 = plane[rb + rows[q + 4], cb + cols[q + 4]:cb + cols[q + 4] + nc]
        a5 = plane[rb + rows[q + 5], cb + cols[q + 5]:cb + cols[q + 5] + nc]
        a6 = plane[rb + rows[q + 6], cb + cols[q + 6]:cb + cols[q + 6] + nc]
        a7 = plane[rb + rows[q + 7], cb + cols[q + 7]:cb + cols[q + 7] + nc]
        for j in range(nc):
            acc[j] += ((c0 * a0[j] + c1 * a1[j]) + (c2 * a2[j] + c3 * a3[j])) + \
                      ((c4 * a4[j] + c5 * a5[j]) + (c6 * a6[j] + c7 * a7[j]))
        q += 8
    while q + 4 <= ntaps:
        c0, c1, c2, c3 = vals[q], vals[q + 1], vals[q + 2], vals[q + 3]
        a0 = plane[rb + rows[q], cb + cols[q]:cb + cols[q] + nc]
        a1 = plane[rb + rows[q + 1], cb + cols[q + 1]:cb + cols[q + 1] + nc]
        a2 = plane[rb + rows[q + 2], cb + cols[q + 2]:cb + cols[q + 2] + nc]
        a3 = plane[rb + rows[q + 3], cb + cols[q + 3]:cb + cols[q + 3] + nc]
        for j in range(nc):
            acc[j] += (c0 * a0[j] + c1 * a1[j]) + (c2 * a2[j] + c3 * a3[j])
        q += 4
    while q < ntaps:
        c = vals[q]
        a0 = plane[rb + rows[q], cb + cols[q]:cb + cols[q] + nc]
        for j in range(nc):
            acc[j] += c * a0[j]
        q += 1


def _has_nonfinite(plane, r0, r1, c0, c1):
    bad = False
    for r in range(r0, r1):
        row = plane[r, c0:c1]
        for j in range(c1 - c0):
            bad |= (row[j] - row[j]) != 0      # NaN for NaN and +-Inf
    return bad


def _store(acc, dst, nc, scale, scaled, integer_out, lo, hi):
    if integer_out:
        for j in range(nc):
            dst[j] = min(max(np.rint(acc[j] * scale), lo), hi)
    elif scaled:
        for j in range(nc):
            dst[j] = acc[j] * scale
    else:
        for j in range(nc):
            dst[j] = acc[j]


def _fill_row(dst, src, cval, col_map, c0, width, inner_lo, inner_hi):
    """dst[0:width] = padded row, padded columns c0 .. c0 + width - 1: a plain copy
    where they lie inside the image (padded columns inner_lo .. inner_hi - 1), the
    border rule's column (col_map; -1 = cval) elsewhere."""
    a = min(max(inner_lo, c0), c0 + width)
    e = max(min(inner_hi, c0 + width), a)
    for p in range(c0, a):
        j = col_map[p]
        dst[p - c0] = cval if j < 0 else src[j]
    if e > a:
        seg_src = src[a - inner_lo:e - inner_lo]
        seg_dst = dst[a - c0:e - c0]
        for j in range(e - a):
            seg_dst[j] = seg_src[j]
    for p in range(e, c0 + width):
        j = col_map[p]
        dst[p - c0] = cval if j < 0 else src[j]


def _tiles(t0, t1, x, row_map, col_map, inner_lo, cval, rows, cols, vals, nz, scale,
           scaled, integer_out, lo, hi, out, check_finite, tile_rows, tile_cols):
    """Tiles t0 .. t1 - 1 (row-major over batch, tile rows, tile columns)."""
    nbatch, ho, wo = out.shape
    kh = row_map.shape[0] - ho + 1
    kw = col_map.shape[0] - wo + 1
    inner_hi = inner_lo + x.shape[2]
    n_rt = (ho + tile_rows - 1) // tile_rows
    n_ct = (wo + tile_cols - 1) // tile_cols
    # row length padded so that rows do not start near a multiple of 4 KiB apart: a
    # vertical kernel reads 8 rows at once, and rows 0, 128 or 256 bytes (mod 4 KiB)
    # apart ran a 31x1 kernel 3-6x slower in isolation (L1 sets / 4K aliasing)
    width = min(tile_cols, wo) + kw - 1
    stride = width
    while not (512 <= (stride * vals.itemsize) % 4096 <= 3584
               and (stride * vals.itemsize) % 1024 != 0):
        stride += 8
    buf = np.empty((min(tile_rows, ho) + kh - 1, stride), dtype=vals.dtype)
    acc = np.empty(min(tile_cols, wo), dtype=vals.dtype)
    for t in range(t0, t1):
        b = t // (n_rt * n_ct)
        r0 = ((t // n_ct) % n_rt) * tile_rows
        c0 = (t % n_ct) * tile_cols
        nr = min(r0 + tile_rows, ho) - r0
        nc = min(c0 + tile_cols, wo) - c0
        # the tile's padded input, built once in the accumulator type from x and the
        # border rule (no padded copy of the whole image)
        for r in range(nr + kh - 1):
            source_row = row_map[r0 + r]
            if source_row < 0:
                dst = buf[r]
                for j in range(nc + kw - 1):
                    dst[j] = cval
            else:
                _fill_row(buf[r], x[b, source_row], cval, col_map, c0, nc + kw - 1,
                          inner_lo, inner_hi)
        ntaps = nz
        if check_finite and _has_nonfinite(buf, 0, nr + kh - 1, 0, nc + kw - 1):
            ntaps = vals.shape[0]       # 0 * inf is NaN: every tap counts
        for i in range(nr):
            _row_sum(buf, i, 0, rows, cols, vals, ntaps, acc, nc)
            _store(acc, out[b, r0 + i, c0:c0 + nc], nc, scale, scaled, integer_out, lo, hi)


_NUMBA_FUNCTIONS = ("_row_sum", "_has_nonfinite", "_store", "_fill_row", "_tiles")


_setup_lock = threading.Lock()


def _compile():
    """The compiled tile kernel (numba jit on the first call, from the disk cache later)."""
    global _kernel
    with _setup_lock:
        if _kernel is None:
            import numba

            module = globals()
            for name in _NUMBA_FUNCTIONS:
                options = {"nogil": True} if name == "_tiles" else {}
                module[name] = numba.njit(cache=True, **options)(module[name])
            _kernel = module["_tiles"]
    return _kernel


def run_tiles(kernel, n_tiles: int, args, workers: int) -> None:
    """Run kernel(t0, t1, *args) over tiles 0 .. n_tiles - 1 on ``workers`` threads.

    Chunks of tiles are handed out one at a time from a shared counter (dynamic
    scheduling); the calling thread works too, and waits only for chunks already taken.
    So a worker that has not started yet (its core taken by another process) holds
    nothing up: on a loaded 2-core machine numba's own prange (OpenMP layer) measured
    10-30x slower than one thread here, because its end-of-loop barrier waits for every
    thread to be scheduled."""
    from candidates.runtime import run_jobs

    n_chunks = max(1, min(n_tiles, CHUNKS_PER_THREAD * workers))
    bounds = [n_tiles * i // n_chunks for i in range(n_chunks + 1)]
    run_jobs([functools.partial(kernel, bounds[i], bounds[i + 1], *args) for i in range(n_chunks)],
             workers)


def exact_form(w, x_dtype, cval: float = 0.0):
    """(c, n, acc dtype) when the image is an integer type and w = c * n with integer n
    whose sum keeps every sum exact in int32/int64; else None."""
    name = np.dtype(x_dtype).name
    if name not in _EXACT_INPUTS:
        return None
    w64 = np.asarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w64)):
        return None
    nonzero = np.abs(w64[w64 != 0])
    if nonzero.size == 0:
        return None
    c = float(nonzero.min())
    mantissa, _ = math.frexp(c)
    if not math.ldexp(mantissa, 32).is_integer():   # c must have <= 32 significant bits
        return None
    n = np.round(w64 / c)
    if np.any(np.abs(n) > 2**20) or not np.array_equal(n * c, w64):
        return None
    if not float(cval).is_integer():
        return None
    big = max(_EXACT_INPUTS[name], abs(cval))
    total = float(np.abs(n).sum()) * big
    if total < 2**31:
        return c, n, np.dtype(np.int32)
    if total < 2**62:
        return c, n, np.dtype(np.int64)
    return None


def _taps(core, acc):
    """Tap lists (row, col, value): nonzero taps first, then the zero ones."""
    rows, cols = np.indices(core.shape)
    order = np.argsort(core.reshape(-1) == 0, kind="stable")
    return (rows.reshape(-1)[order].astype(np.int64), cols.reshape(-1)[order].astype(np.int64),
            core.reshape(-1)[order].astype(acc), int(np.count_nonzero(core)))


def index_map(n: int, lo: int, hi: int, border: str) -> np.ndarray:
    """For padded positions -lo .. n + hi - 1 of an axis of length n: the index read
    (refimpl.pad.source_index, vectorised), -1 where the border is cval."""
    return source_indices(np.arange(-lo, n + hi), n, border)


PREP_ENTRIES = 32
_prep_cache = KernelCache(PREP_ENTRIES)


def _prepare(w, x_dtype, fill, compute):
    """Per kernel (LRU keyed by its bytes, the image dtype, cval and compute dtype): the
    non-trivial axes, the tap lists and the exact integer form if there is one."""
    wc = np.ascontiguousarray(w)
    key = (np.dtype(x_dtype).str, float(fill), compute.str)
    return _prep_cache.get(wc, key, lambda: _make_prep(wc, x_dtype, fill, compute))


def _make_prep(wc, x_dtype, fill, compute):
    axes = [a for a, k in enumerate(wc.shape) if k > 1]
    if len(axes) < 2 and wc.ndim >= 2:
        # at most one non-trivial axis: still a 2-D plane with the last axis as its rows
        # (a 31x1 kernel is kw = 1, not a transposed 1-D problem: the transposing copy
        # cost 5x the filtering on 1024-wide images; 1x31 keeps whole planes too)
        last = wc.ndim - 1
        axes = [last - 1, last] if not axes or axes == [last] else [axes[0], last]
    axes = axes or [wc.ndim - 1]
    core = wc.reshape([wc.shape[a] for a in axes])
    if core.ndim == 1:
        core = core[None, :]
    exact = exact_form(wc, x_dtype, fill)
    if exact is not None:
        c, n, acc = exact
        taps = _taps(n.reshape(core.shape), acc)
        scale, check_finite = c, False
    else:
        acc = compute
        taps = _taps(np.asarray(core, dtype=compute), compute)
        scale = 1.0
        check_finite = taps[3] < taps[2].shape[0] and np.dtype(x_dtype).kind == "f"
    return (tuple(axes), acc, taps, float(scale), exact is not None, check_finite)


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    from candidates.runtime import threads

    x, w = np.asarray(x), np.asarray(w)
    out = result_dtype(x.dtype, w.dtype)
    compute = compute_dtype(out)
    pads = image_padding(w.shape, padding, origin)
    n_out = image_output_shape(x.shape, pads, w.shape)
    fill = cval if border == "constant" else 0.0
    axes, acc, (rows, cols, vals, nz), scale, exact, check_finite = \
        _prepare(w, x.dtype, fill, compute)
    if not exact and (x.dtype == np.float16 or x.dtype.kind not in "iuf"):
        x = x.astype(compute)

    # the non-trivial axes last, the other axes as a batch of (H, W) planes
    plain = x.ndim == 2 and axes == (0, 1)
    if plain:
        batch, x3 = (), x[None]
    else:
        moved = np.moveaxis(x, axes, list(range(-len(axes), 0)))
        batch = moved.shape[:-len(axes)]
        x3 = moved.reshape((-1,) + ((1,) if len(axes) == 1 else ()) + moved.shape[-len(axes):])
    if not x3.flags.c_contiguous:
        x3 = np.ascontiguousarray(x3)
    (row_lo, row_hi), (col_lo, col_hi) = ([(0, 0)] if len(axes) == 1 else []) + [pads[a] for a in axes]
    row_map = index_map(x3.shape[1], row_lo, row_hi, border)
    col_map = index_map(x3.shape[2], col_lo, col_hi, border)
    n_axes = tuple(n_out[a] for a in axes)
    integer_out = out_dtype is not None and np.dtype(out_dtype).kind in "iu"
    if integer_out:
        target = np.dtype(out_dtype)
        lo, hi = float(np.iinfo(target).min), float(np.iinfo(target).max)
    else:
        floating = out_dtype is None or np.dtype(out_dtype) == np.float16
        target = compute if floating else np.dtype(out_dtype)
        lo = hi = 0.0
    y3 = np.empty((x3.shape[0],) + ((1,) if len(axes) == 1 else ()) + n_axes, dtype=target)

    # tall kernels: taller tiles, so that the kh - 1 extra input rows of a tile stay a
    # small part of what it converts,
    # and narrower ones, so that the tile's input stays within TILE_BYTES (L2): a 31x1
    # kernel reads 31 rows per output row
    kh = row_map.shape[0] - y3.shape[1]
    tile_rows = max(TILE_ROWS, 2 * kh)
    tile_cols = max(256, min(TILE_COLS, TILE_BYTES // (vals.itemsize * (tile_rows + kh))))
    n_tiles = y3.shape[0] * -(-y3.shape[1] // tile_rows) * -(-y3.shape[2] // tile_cols)
    workers = threads() if y3.size * len(vals) >= PARALLEL_MIN_WORK else 1
    run_tiles(_compile(), n_tiles, (x3, row_map, col_map, col_lo, acc.type(fill), rows, cols,
                                    vals, nz, scale, exact, integer_out, lo, hi, y3,
                                    check_finite, tile_rows, tile_cols), workers)

    y = y3[0] if plain else np.moveaxis(y3.reshape(batch + n_axes), list(range(-len(axes), 0)), axes)
    if out_dtype is not None:
        return y.astype(out_dtype, copy=False)
    return y.astype(out, copy=False)
