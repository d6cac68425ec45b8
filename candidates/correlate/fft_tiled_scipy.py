# fft_tiled_scipy: overlap-save real FFT correlation over tiles, memory bounded by the tiles.
#
#   output y (n_out per axis) cut into tiles of T outputs per axis (the last one shorter);
#   the tile at output offset o reads the padded image xp[o : o + T + K - 1] -- the padded
#   image is never built: each tile is gathered from x by the border rule.
#
#        x (n0 x n1), padded by lo/hi per axis (virtually)       one tile, per axis:
#     +---------+---------+---------+-+                    <- T + K - 1 read ->  (=  L)
#     | t00  :  | t01  :  | t02  :  | |  tiles touching      +------------------+
#     |......:..|......:..|......:..|.|  the border: every   | K-1  | T outputs |
#     +---------+---------+---------+-+  sample of the       | alias| kept      |
#     | t10  :  | t11  :  | t12  :  | |  extension read at   +------------------+
#     |......:..|......:..|......:..|.|  index_map(i - lo)        ^ rfftn(L) * V, irfftn(L)
#     +---------+---------+---------+-+  (numpy.pad's rule);     c[K-1 : K-1+T] -> y[o:o+T]
#     (input tiles overlap by K - 1;     interior tiles are one
#      output tiles do not)              slice copy
#
# Algorithm: correlating with w is convolving with v = w reversed. A DFT of length
#   L >= B = T + K - 1 of an input block computes the circular convolution, whose indices
#   K-1 .. B-1 are the exact linear ones (the wrap-around lands on indices < K-1: the
#   overlap-save observation, as in fft_scipy's header). So each output tile of T samples
#   per axis costs one forward real FFT of the L^d block, a pointwise product with V (the
#   reversed kernel's transform at length L, computed ONCE per (kernel, L, dtype) and kept
#   in fft_scipy's LRU), and one inverse FFT; its T outputs go straight into the
#   preallocated result (np.empty of the result dtype; an integer out_dtype is rounded and
#   saturated tile by tile). No full-size temporary exists.
#   Borders: per axis and per tile start, the source index of every padded position is
#   computed by border_index() (a vectorised refimpl.pad.source_index: constant -> -1,
#   edge -> clip, wrap -> modulo, symmetric/reflect -> fold of period 2n / 2n-2), so every
#   border, padding wider than the image and kernels larger than the image follow
#   numpy.pad exactly (np.pad of a tile slice would be wrong: the extension of a tile is
#   not the tile's own reflection). The index array is split into runs of step +1, -1 or 0
#   (or cval), and the tile is filled by one strided slice copy per combination of runs
#   (an interior tile: one run per axis, one copy; an edge tile: 2-3 copies); more than
#   MAX_BLOCKS combinations (tiny images under huge padding) fall back to one fancy gather.
#   Blocks shorter than L (the last tile per axis) are zero-filled first.
#   The one-tile plan (small images) is fft_scipy's transform with this gather.
#   Parallelism: a pool of candidates.runtime.threads() threads pulls tiles from a shared
#   queue; each transforms with one pocketfft thread (it releases the GIL) into buffers it
#   allocated once (batching several tiles per rfftn call with FFT workers is slower: a
#   larger working set, serial gathers). One tile only: no pool, threads() workers inside
#   the FFT.
#   No allocation per tile: scipy.fft's functions return fresh arrays, and glibc mmaps,
#   page-faults and unmaps blocks of ~1 MiB and more on every tile. So the transforms go
#   through scipy.fft's own pocketfft binding
#   (scipy.fft._pocketfft.pypocketfft, whose r2c/c2c/c2r take out=): r2c into the
#   worker's spectrum buffer, the product in place, then the inverse as pocketfft's
#   multi-axis c2r does it (c2c over the leading axes in place, c2r of the last axis into
#   the worker's output buffer; same arithmetic, without c2r's internal temporary). When
#   that binding is missing or its signature changes, the public scipy.fft functions are
#   used (USE_POCKETFFT_OUT = False forces them; tests compare both).
#
# Tile size rule (per call, from the shapes; transform_lengths()): the candidate transform
#   lengths per axis are 2^k and 3*2^k (16 .. 3*2^20) with T = L - K + 1 >= K (at most
#   half of a block is overlap), plus the single-tile length next_fast_len(n_out + K - 1)
#   (the whole axis: fft_scipy's transform). Every combination over the axes (at most 4096;
#   beyond, a single tile) is scored
#       cost = ceil(tiles / p) * block_cost      (one tile: block_cost / p * 1.25)
#       block_cost = S log2 S * (1 + 0.15 * max(0, log2(S / 2^18))
#                               + 0.3 * sum over non-last axes of max(0, log2(L / 512)))
#                    + 1.5e5
#   S = prod(L) samples per block, p = threads; the cheapest wins. S log2 S is the FFT
#   work. The first penalty is the slowdown once a block's float32 samples outgrow the
#   1 MiB L2; the second the extra cost of long strided column transforms; 1.5e5 units
#   (~40 us) is the per-tile Python, gather and call overhead, which makes tiny tiles lose.
#   The constants are measured and noisy: anything in 192..512 per axis is within the
#   noise for 2-D; the rule is there to stay out of the bad corners (huge or tiny blocks,
#   tall strips). TILE (int: output samples per tile per axis) forces a size instead (the
#   tests force tiny tiles).
#
# Wins: images much larger than the kernel with kernels >= ~15x15, above all huge ones
#   (seed-fft-10k: about 0.6x filter2D's time, with a few MiB of extra memory where
#   whole-image FFTs need more than a GiB). Blocks that fit in L2 make each FFT faster per
#   sample than one image-sized transform, and nothing is page-faulted per call but the
#   output.
# Does not win: small kernels (3x3..7x7: direct is cheaper: 4096^2 3x3 4.3x filter2D's
#   time), small images (512^2 15x15: one tile, 1.3x fft_scipy's time -- the Python
#   gather, the copy into the output that fft_scipy avoids by returning a view), kernels
#   comparable to the image (each block mostly overlap; 1024^2 with 63x63 about even with
#   fft_scipy and filter2D), float64 (same algorithm, twice the bytes).
# Does not apply: non-finite inputs (a NaN/Inf spreads over its whole tile; the harness
#   skips 'fft' candidates on those cases). bfloat16 has no numpy dtype: refused.
# Numerics: the normwise 'fft' model, per tile: every output has an absolute error
#   ~ u * log2(S) * ||block||_2 * ||w||_2, the block being the tile's part of the padded
#   image (zero-filled beyond it). The harness's bound uses the whole padded image's norm
#   (>= any block's) and the whole image's transform length prod(P + K - 1) (>= a block's
#   S up to next_fast_len's rounding, a fraction of one in log2), so the bound holds tile
#   by tile, with room (an output's error no longer scales with far-away samples).
#   dtypes as fft_scipy: float32 in -> complex64 transforms; float64 -> complex128;
#   float16 computed in float32 and rounded once; integer images in float32 (float64 with
#   a float64 kernel: refimpl.dtypes.result_dtype); an integer out_dtype rounds half to
#   even and saturates (refimpl.dtypes.round_saturate's rule, applied per tile); complex
#   inputs use complex transforms (c2c), no conjugation.
from __future__ import annotations

import itertools
import math
import threading

import numpy as np

from refimpl.dtypes import image_compute_dtype, result_dtype
from refimpl.geometry import image_output_shape, image_padding
from refimpl.pad import BORDERS, source_indices

LIBRARY = "scipy"
DEVICE = "cpu"
ERROR = "fft"

TILE: int | None = None       # force this many output samples per tile per axis; None: the rule
CACHE_SAMPLES = 2**18         # block samples that fit the 1 MiB L2 in float32
BIG_PENALTY = 0.15            # extra cost per doubling of the block beyond CACHE_SAMPLES
STRIDED_PENALTY = 0.3         # extra cost per doubling of a non-last axis beyond...
STRIDED_LENGTH = 512          # ...this length (strided column transforms)
TILE_OVERHEAD = 1.5e5         # per-tile fixed cost, in units of one S log2 S term
MAX_BLOCKS = 64               # slice copies per tile before the fancy-gather fallback
MAX_COMBINATIONS = 4096       # tile-size combinations scored per call
FAST_LENGTHS = tuple(sorted({b * 2**i for b in (1, 3) for i in range(4, 21)}))


def supports(spec):
    if "bfloat16" in spec.dtypes:
        return "bfloat16 has no numpy dtype for scipy.fft"
    return None


# ---------------------------------------------------------------------------------------
# border index maps
# ---------------------------------------------------------------------------------------

def border_index(positions, n: int, border: str) -> np.ndarray:
    """The index of an axis of length ``n`` that each position (relative to the first
    sample of x; negative or >= n in the border) reads; -1 where the border is constant.
    refimpl.pad.source_index, vectorised.

    >>> border_index(range(-2, 6), 4, "symmetric").tolist()
    [1, 0, 0, 1, 2, 3, 3, 2]
    >>> border_index(range(-3, 5), 2, "reflect").tolist()
    [1, 0, 1, 0, 1, 0, 1, 0]
    >>> border_index([-1, 0, 3], 3, "constant").tolist()
    [-1, 0, -1]
    """
    return source_indices(positions, n, border)


def index_runs(idx) -> list[tuple[int, int, int, int]]:
    """Split an index map into runs ``(dest start, length, source start, step)``, step in
    (+1, -1, 0); a run of -1 (cval) has source -1 and step 0.

    >>> index_runs(np.array([2, 1, 0, 1, 2, 3]))
    [(0, 3, 2, -1), (3, 3, 1, 1)]
    >>> index_runs(np.array([-1, -1, 0, 1, 1, 1]))
    [(0, 2, -1, 0), (2, 2, 0, 1), (4, 2, 1, 0)]
    """
    idx = np.asarray(idx)
    n = len(idx)
    if n and idx[0] >= 0 and idx[-1] - idx[0] == n - 1 and bool(np.all(np.diff(idx) == 1)):
        return [(0, n, int(idx[0]), 1)]
    values = idx.tolist()
    runs = []
    i = 0
    while i < n:
        a = values[i]
        j = i + 1
        if a < 0:
            while j < n and values[j] < 0:
                j += 1
            runs.append((i, j - i, -1, 0))
        else:
            step = values[j] - a if j < n and values[j] >= 0 else 1
            if step not in (-1, 0, 1):
                step = 1
            while j < n and values[j] >= 0 and values[j] == values[j - 1] + step:
                j += 1
            if j - i == 1:
                step = 1
            runs.append((i, j - i, a, step))
        i = j
    return runs


# ---------------------------------------------------------------------------------------
# tile sizes
# ---------------------------------------------------------------------------------------

def block_cost(lengths) -> float:
    """Cost of one tile of transform lengths ``lengths``, in units of ~0.28 ns here."""
    samples = math.prod(lengths)
    penalty = BIG_PENALTY * max(0.0, math.log2(samples / CACHE_SAMPLES))
    penalty += STRIDED_PENALTY * sum(max(0.0, math.log2(L / STRIDED_LENGTH)) for L in lengths[:-1])
    return samples * math.log2(max(samples, 2)) * (1.0 + penalty) + TILE_OVERHEAD


def transform_lengths(out_shape, kernel_shape, real: bool = True, workers: int = 1,
                      tile: int | None = None) -> tuple[int, ...]:
    """Transform length L per axis; the output tile is T = L - K + 1 (see the header).

    >>> transform_lengths((100,), (5,))     # one tile: 104 = 8*13 -> 108 = 4*27, 5-smooth
    (108,)
    >>> transform_lengths((100, 100), (3, 3), tile=16)
    (18, 18)
    """
    from scipy.fft import next_fast_len

    last = len(out_shape) - 1
    whole = [next_fast_len(n + k - 1, real=(real and a == last))
             for a, (n, k) in enumerate(zip(out_shape, kernel_shape))]
    if tile is not None:
        if isinstance(tile, bool) or int(tile) < 1:
            raise ValueError(f"TILE must be a positive int or None, got {tile!r}")
        return tuple(min(w, next_fast_len(min(int(tile), n) + k - 1, real=(real and a == last)))
                     for a, (n, k, w) in enumerate(zip(out_shape, kernel_shape, whole)))
    choices = [[w] + [L for L in FAST_LENGTHS if L < w and L - k + 1 >= k]
               for w, k in zip(whole, kernel_shape)]
    if math.prod(len(c) for c in choices) > MAX_COMBINATIONS:
        return tuple(whole)
    best, best_cost = tuple(whole), math.inf
    for lengths in itertools.product(*choices):
        tiles = math.prod(-(-n // (L - k + 1))
                          for n, k, L in zip(out_shape, kernel_shape, lengths))
        cost = block_cost(lengths)
        cost = cost / workers * 1.25 if tiles == 1 else -(-tiles // workers) * cost
        if cost < best_cost:
            best, best_cost = lengths, cost
    return tuple(best)


# ---------------------------------------------------------------------------------------
# the filter
# ---------------------------------------------------------------------------------------

def _axis_plan(n_out, n, k, lo, L, border):
    """Per tile along one axis: (output start, output length, runs of the index map)."""
    T = L - k + 1
    plan = []
    for o in range(0, n_out, T):
        t = min(T, n_out - o)
        idx = border_index(np.arange(o - lo, o - lo + t + k - 1), n, border)
        plan.append((o, t, index_runs(idx), idx))
    return plan


def _fill(buf, x, axes_items, cval):
    """Copy one input block (per axis: its runs and index map) into buf's corner."""
    runs = [item[2] for item in axes_items]
    if math.prod(len(r) for r in runs) > MAX_BLOCKS:      # fancy gather, then cval rows
        maps = [item[3] for item in axes_items]
        block = x[np.ix_(*[np.maximum(m, 0) for m in maps])]
        region = buf[tuple(slice(0, len(m)) for m in maps)]
        np.copyto(region, block, casting="unsafe")
        for a, m in enumerate(maps):
            if (m < 0).any():
                region[(slice(None),) * a + (m < 0,)] = cval
        return
    for combo in itertools.product(*runs):
        dest = tuple(slice(d, d + length) for d, length, _, _ in combo)
        if any(src < 0 for _, _, src, _ in combo):
            buf[dest] = cval
            continue
        source = []
        for _, length, src, step in combo:
            if step == 1:
                source.append(slice(src, src + length))
            elif step == -1:
                end = src - length
                source.append(slice(src, end if end >= 0 else None, -1))
            else:
                source.append(slice(src, src + 1))      # broadcast along the run
        np.copyto(buf[dest], x[tuple(source)], casting="unsafe")


USE_POCKETFFT_OUT = True    # False: the public scipy.fft functions (allocate per call)


class _Block:
    """One worker's buffers: the input block, its spectrum, the inverse; no allocation
    per tile on the pocketfft path."""

    def __init__(self, lengths, compute, spectrum, workers, pfft):
        self.lengths, self.workers, self.pfft, self.kernel = lengths, workers, pfft, spectrum
        self.real = compute.kind == "f"
        self.axes = tuple(range(len(lengths)))
        self.buf = np.empty(lengths, dtype=compute)
        if pfft is not None and self.real:
            self.spec = np.empty(spectrum.shape, dtype=spectrum.dtype)
            self.out = np.empty(lengths, dtype=compute)

    def convolve(self):
        """The circular convolution of buf with the kernel, length L per axis."""
        import scipy.fft as sfft

        axes, n, pfft = self.axes, self.workers, self.pfft
        if pfft is None:
            if self.real:
                product = sfft.rfftn(self.buf, axes=axes, workers=n)
                product *= self.kernel
                return sfft.irfftn(product, s=self.lengths, axes=axes, workers=n,
                                   overwrite_x=True)
            product = sfft.fftn(self.buf, axes=axes, workers=n)
            product *= self.kernel
            return sfft.ifftn(product, axes=axes, workers=n, overwrite_x=True)
        if not self.real:
            pfft.c2c(self.buf, axes, True, 0, self.buf, n)
            self.buf *= self.kernel
            pfft.c2c(self.buf, axes, False, 2, self.buf, n)
            return self.buf
        pfft.r2c(self.buf, axes, True, 0, self.spec, n)
        self.spec *= self.kernel
        if len(axes) > 1:   # the inverse as pocketfft's own c2r does it, without its temporary
            pfft.c2c(self.spec, axes[:-1], False, 2, self.spec, n)
        pfft.c2r(self.spec, axes[-1:], self.lengths[-1], False, 2, self.out, n)
        return self.out


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    """y[i] = sum_j w[j] * xp[i + j], tile by tile (overlap-save, see the header)."""
    from candidates.correlate.fft_scipy import kernel_transform, pocketfft_with_out
    from candidates.runtime import threads

    x, w = np.asarray(x), np.asarray(w)
    if x.ndim != w.ndim:
        raise ValueError(f"x and w must have the same rank, got x {x.shape} and w {w.shape}")
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    out = np.dtype(result_dtype(x.dtype, w.dtype) if out_dtype is None else out_dtype)
    compute = image_compute_dtype(x.dtype, w.dtype)
    real = compute.kind == "f"
    pads = image_padding(w.shape, padding, origin)
    out_shape = image_output_shape(x.shape, pads, w.shape)
    if any(n < 1 for n in out_shape):
        raise ValueError(f"kernel {w.shape} is larger than the padded image for padding={padding!r}")
    y = np.empty(out_shape, dtype=out)
    workers = max(1, threads())
    lengths = transform_lengths(out_shape, w.shape, real, workers, TILE)
    plans = [_axis_plan(n_out, n, k, lo, L, border)
             for n_out, n, k, (lo, _), L in zip(out_shape, x.shape, w.shape, pads, lengths)]
    tiles = list(itertools.product(*plans))
    spectrum = kernel_transform(w, lengths, compute)
    saturate = np.iinfo(out) if out.kind in "iu" else None
    cval = compute.type(cval)
    inner = workers if len(tiles) == 1 else 1
    pfft = pocketfft_with_out() if USE_POCKETFFT_OUT else None

    def run(tile, block):
        if any(len(item[3]) < L for item, L in zip(tile, lengths)):
            block.buf.fill(0)
        _fill(block.buf, x, tile, cval)
        c = block.convolve()
        kept = c[tuple(slice(k - 1, k - 1 + t) for k, (_, t, _, _) in zip(w.shape, tile))]
        if saturate is not None:
            np.rint(kept, out=kept)
            np.clip(kept, saturate.min, saturate.max, out=kept)
        target = y[tuple(slice(o, o + t) for o, t, _, _ in tile)]
        np.copyto(target, kept, casting="unsafe")

    if len(tiles) == 1 or workers == 1:
        block = _Block(lengths, compute, spectrum, inner, pfft)
        for tile in tiles:
            run(tile, block)
        return y

    from concurrent.futures import ThreadPoolExecutor

    queue = iter(tiles)
    lock = threading.Lock()

    def worker():
        block = _Block(lengths, compute, spectrum, 1, pfft)
        while True:
            with lock:
                tile = next(queue, None)
            if tile is None:
                return
            run(tile, block)

    count = min(workers, len(tiles))
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(worker) for _ in range(count)]
        for f in futures:
            f.result()
    return y
