# fft_scipy: pad by the border, then one real FFT linear correlation (scipy.fft, pocketfft).
#
#   x --np.pad(border, to L)--> xp (P = n + lo + hi per axis, extended to L = next_fast_len(P))
#                          |  rfftn, length L >= P per axis
#                          v
#   w --reverse--> v  --rfftn(L)--> V   (cached: LRU keyed by the kernel's bytes)
#                          |
#              Y = XP * V  (pointwise, in place)
#                          |  irfftn(L)
#                          v
#   c (L per axis) --keep c[K-1 : P]--> y   (the 'valid' part: n_out = P - K + 1)
#
#        0        K-1                 P-1    L-1
#        [aliased | valid  ...........|  junk ]
#
# Algorithm: correlating with w is convolving with v = w reversed. The DFT of length L
#   computes the *circular* convolution: c[m] collects the linear terms at m, m + L, ...
#   The linear convolution is P + K - 1 long, so with L >= P the terms folded back by the
#   wrap-around land on indices m <= K - 2 only: the valid indices K-1 .. P-1 are exact
#   (the overlap-save observation; refimpl/fftconv.py keeps L >= P + K - 1 instead so
#   that every index means what it says). That saves up to K - 1 samples per axis of
#   transform, and as the valid part never reads xp beyond P - 1, the image is padded by
#   its border straight to L in one numpy.pad call (the L - P extra samples are harmless
#   border values; no second, zero-padded copy).
#   Every border and every padding ('same', 'valid', 'full', padding wider than the image)
#   is handled by numpy.pad before the transform, so the FFT only ever sees a linear
#   problem; the wrap border thereby gives circular convolution on x's grid.
#   Three plans (plan()), by how little padding the circular product needs:
#     'padded'   the above: L >= P = n + lo + hi, every border.
#     'zeros'    constant border with cval 0: x is not padded at all (the transform's s=
#                argument appends zeros) and L >= n + max(lo, hi): circularly the zeros
#                after the image are also the zeros before it, so the two sides of the
#                padding share them. The kernel is laid out at (lo - k) mod L, so c[0 ..
#                n_out - 1] is the output. 1024^2 with 63x63: L = 1056 instead of 1089.
#     'periodic' wrap border, 'same' output, n itself a fast length: the wrap border IS
#                the circular correlation of length n; no padding.
#   The kernel's transform depends only on (kernel values, L, layout, dtype): it is cached
#   in a small LRU (8 entries, at most 512 MiB of transforms; clear_cache() frees them)
#   (candidates.runtime.KernelCache: the kernel's values, L and layout), so the
#   timing loop and a video filtered frame by frame skip it, and a kernel whose values
#   changed (even in place, same array) is never served a stale transform.
# Wins: large kernels on 2-D float images (>= ~11x11; on 1000x1000 float32 an FFT beats
#   OpenCV's direct filter2D from 15x15 on, direct wins at 3x3 and 7x7), large 3-D
#   kernels; cost is O(P log P) whatever the kernel size. On 1024^2 float32 with 31x31
#   and 63x63 it takes about half filter2D's time.
# Does not win: small kernels (3x3..7x7: two full-size transforms cost more than K
#   multiply-adds per pixel), huge images (10000^2: the kernel's transform and the half
#   spectrum are each about the float32 image's size, the padded image too for borders
#   other than zeros, where OpenCV's direct filter2D writes only its output; tracemalloc
#   peak of a first call: 3-5x the image; later calls reuse the kept buffers and allocate
#   only the output), tiny images (call overhead).
#   Buffers: 2-D and higher real transforms go slab by slab along axis 0 (slabs of ~512
#   KiB of rows: r2c of a slab, then c2c along axis 0 and the product over the whole half
#   spectrum, then c2r of a slab straight into the output rows the crop keeps). Only the
#   half spectrum is image-sized, a scratch buffer of this thread
#   (candidates.runtime.scratch, kept up to 256 MiB; clear_cache() frees it), written by
#   pocketfft's r2c/c2c/c2r with out= (scipy.fft's private binding; the public functions
#   when it is missing). The slab route (correlate_in_slabs) takes that engine as an
#   argument: fft_ducc runs it with ducc0's transforms, which take the same arguments.
#   The 'padded' plan also keeps the padded image. Kept buffers avoid page-faulting fresh
#   image-sized arrays on every call; slabs need less memory than whole-image passes
#   through a padded copy and a full inverse, for the same time. The result is a new array.
# Does not apply: non-finite inputs (one NaN/Inf spreads over the whole output; the
#   harness skips 'fft' candidates on those cases, so supports() does not refuse them);
#   integer results are not guaranteed exact (rounded from a float result within the
#   bound, like any float path). bfloat16 has no numpy dtype: refused.
# Numerics: normwise, not elementwise (the 'fft' model of convbench/tolerance.py): every
#   output has an absolute error ~ u * log2(L) * ||xp||_2 * ||w||_2, so outputs much
#   smaller than their neighbours (edges of a smoothed image) lose relative accuracy.
#   scipy.fft keeps single precision: float32 in -> complex64 transforms (u = 2**-24);
#   float64 in -> complex128. float16 is computed in float32 and rounded once at the end;
#   integer images in float32 (float64 when the kernel is float64: refimpl.dtypes), and an
#   integer out_dtype is rounded half-to-even and saturated (refimpl.dtypes.round_saturate).
#   Complex inputs use the complex transforms (fftn) and no conjugation.
from __future__ import annotations

import functools

import numpy as np

from candidates.runtime import KernelCache, extend
from refimpl.dtypes import image_compute_dtype, result_dtype, round_saturate
from refimpl.geometry import image_output_shape, image_padding

LIBRARY = "scipy"
DEVICE = "cpu"
ERROR = "fft"

CACHE_ENTRIES = 8
CACHE_BYTES = 512 * 2**20     # all kept transforms together; a larger one is never kept

_cache = KernelCache(CACHE_ENTRIES, CACHE_BYTES, nbytes=lambda s: s.nbytes)


def supports(spec):
    if "bfloat16" in spec.dtypes:
        return "bfloat16 has no numpy dtype for scipy.fft"
    return None


def fft_shape(padded_shape, complex_input: bool = False) -> tuple[int, ...]:
    """Transform length per axis: the next fast size >= the padded image (>= P suffices
    for the valid part, see the header). The last axis of a real transform takes a
    5-smooth size (rfft), the others any fast complex size."""
    from scipy.fft import next_fast_len

    last = len(padded_shape) - 1
    return tuple(next_fast_len(p, real=(i == last and not complex_input))
                 for i, p in enumerate(padded_shape))


def kernel_transform(w: np.ndarray, shape: tuple[int, ...], compute: np.dtype, offsets=None):
    """FFT of the kernel laid out for a circular correlation of length ``shape``, from the
    LRU when possible: tap k goes to index (offset - k) mod L per axis, so that
    c[i] = sum_k w[k] x[(i + k - offset) mod L]. ``offsets=None`` means K - 1 per axis
    (the reversed kernel at index 0, the layout of the padded plan)."""
    wc = np.ascontiguousarray(w)
    offsets = tuple(k - 1 for k in wc.shape) if offsets is None else tuple(offsets)
    return _cache.get(wc, (shape, compute.str, offsets), lambda: _transform(wc, shape, compute, offsets))


def _transform(wc, shape, compute, offsets):
    import scipy.fft as sfft

    from candidates.runtime import threads

    if all(o == k - 1 for o, k in zip(offsets, wc.shape)) and all(
            k <= n for k, n in zip(wc.shape, shape)):
        v, s = np.flip(wc.astype(compute, copy=False)), shape
    else:   # taps beyond L wrap around and add up: still the circular correlation
        v, s = np.zeros(shape, dtype=compute), None
        index = np.ix_(*[(o - np.arange(k)) % n for o, k, n in zip(offsets, wc.shape, shape)])
        np.add.at(v, index, wc.astype(compute, copy=False))
    axes = tuple(range(wc.ndim))
    if compute.kind == "c":
        spectrum = sfft.fftn(v, s=s, axes=axes, workers=threads())
    else:
        spectrum = sfft.rfftn(v, s=s, axes=axes, workers=threads())
    spectrum.flags.writeable = False          # shared between calls: never modified
    return spectrum


def clear_cache() -> None:
    """Forget the kernel transforms and the calling thread's scratch buffers."""
    from candidates.runtime import release_scratch

    _cache.clear()
    release_scratch(__name__)


def cache_info() -> dict:
    return _cache.info()


def plan(x_shape, w_shape, border, cval, padding, origin, complex_input=False):
    """(kind, transform shape, kernel offsets) for one call; see the header.

    'zeros'    constant border with cval 0: x unpadded, L >= n + max(lo, hi) per axis
    'periodic' wrap border, 'same' output and every n a fast length: L = n
    'padded'   anything else: x padded by the border to L >= P = n + lo + hi
    """
    pads = image_padding(w_shape, padding, origin)
    n_out = image_output_shape(x_shape, pads, w_shape)
    lows = tuple(lo for lo, _ in pads)
    if border == "constant" and cval == 0:
        need = tuple(max(n + max(lo, hi, 0), m) for n, (lo, hi), m in zip(x_shape, pads, n_out))
        return "zeros", fft_shape(need, complex_input), lows
    if border == "wrap" and n_out == tuple(x_shape) and \
            fft_shape(x_shape, complex_input) == tuple(x_shape):
        return "periodic", tuple(x_shape), lows
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(x_shape, pads))
    return "padded", fft_shape(padded, complex_input), None


@functools.cache
def pocketfft_with_out():
    """scipy.fft's pocketfft binding, whose r2c/c2c/c2r take ``out=`` (scipy.fft does not:
    every call would allocate and page-fault fresh spectra); None when it is missing or
    its signature changed (then the public scipy.fft functions are used)."""
    try:
        from scipy.fft._pocketfft import pypocketfft as pfft
        probe = np.zeros((2, 4), dtype=np.float32)
        spec = np.empty((2, 3), dtype=np.complex64)
        pfft.r2c(probe, (0, 1), True, 0, spec, 1)
        pfft.c2c(spec, (0,), False, 2, spec, 1)
        pfft.c2r(spec, (1,), 4, False, 2, probe, 1)
        return pfft
    except Exception:       # pragma: no cover - depends on the scipy build
        return None


USE_POCKETFFT_OUT = True    # False: the public scipy.fft functions (allocate per call)


CHUNK_BYTES = 2**19     # one slab of rows of the transform input: stays in L2 with its spectrum


def _slab_rows(shape) -> int:
    """Rows (axis-0 indices) per slab: about CHUNK_BYTES of float32/64 input, a multiple
    of 8 (pocketfft transforms rows in SIMD groups; a ragged group runs scalar)."""
    import math

    return max(8, CHUNK_BYTES // (8 * math.prod(shape[1:])) // 8 * 8)


def _ranges(n: int, step: int, workers: int):
    """[lo, hi) row ranges, whole slabs each, about four per worker: a job per slab cost
    more in Python than its transform on wide images, one job per worker stalls behind a
    busy core (runtime.run_jobs)."""
    slabs = -(-n // step)
    per_job = max(1, -(-slabs // (4 * workers)))
    return [(lo, min(n, lo + per_job * step)) for lo in range(0, n, per_job * step)]


def _source_rows(x, kind, shape, pads, border, cval, compute):
    """``fill(i, m, buf)``: rows i .. i+m-1 of the transform input (length L per axis) into
    ``buf`` and return it, or None where they are all zero. Only the 'padded' plan builds
    the whole padded image first (a border row can be any row of x)."""
    from candidates.runtime import pad_into, scratch

    n0 = x.shape[0]
    inner = tuple(slice(0, n) for n in x.shape[1:])
    if kind == "periodic" and x.dtype == compute:
        return lambda i, m, buf: x[i:i + m]          # x itself: L = n, nothing to pad
    if kind in ("zeros", "periodic"):
        def fill(i, m, buf):
            if i >= n0:
                return None
            rows = min(m, n0 - i)
            np.copyto(buf[(slice(0, rows),) + inner], x[i:i + rows], casting="unsafe")
            buf[rows:m] = 0
            for axis, n in enumerate(x.shape[1:], start=1):   # zeros after x on the other axes
                buf[(slice(0, rows),) + (slice(None),) * (axis - 1) + (slice(n, None),)] = 0
            return buf[:m]
        return fill
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, pads))
    extended = tuple((lo, hi + length - p) for (lo, hi), p, length in zip(pads, padded, shape))
    block = pad_into(scratch(__name__, "x", shape, compute), x, extended, border, cval)
    return lambda i, m, buf: block[i:i + m]


def _correlate_slabs(pfft, x, spectrum, kind, shape, pads, border, cval, compute, crop, out):
    """irfftn(rfftn(input) * spectrum)[crop] into ``out``, slab by slab along axis 0:

        input rows --r2c (axes 1..)--> spectrum rows     slabs of ~512 KiB, run_jobs threads
        c2c along axis 0, product, inverse c2c axis 0    whole half spectrum, pocketfft threads
        spectrum rows --c2r (axes 1..)--> output rows    only the rows the crop keeps

    Only the half spectrum is image-sized (this thread's scratch): no padded copy of x
    (except for the 'padded' plan), no full-size inverse, no separate crop pass; rows of
    zeros (the 'zeros' plan's extension) are not transformed. 1-D inputs take the public
    scipy.fft route in correlate(). ``pfft``: the transform engine, pocketfft's binding or
    ducc0.fft (fft_ducc): r2c/c2c/c2r(a, axes, ..., out, nthreads), the same arguments."""
    from candidates.runtime import run_jobs, scratch, threads

    workers = threads()
    spec = scratch(__name__, "spectrum", spectrum.shape, spectrum.dtype)
    rest = tuple(range(1, x.ndim))
    step = _slab_rows(shape)
    fill = _source_rows(x, kind, shape, pads, border, cval, compute)

    def forward(lo, hi):
        def job():
            buf = scratch(__name__, "slab", (step,) + shape[1:], compute)
            for i in range(lo, hi, step):
                m = min(step, hi - i)
                rows = fill(i, m, buf)
                if rows is None:
                    spec[i:i + m] = 0
                else:
                    pfft.r2c(rows, rest, True, 0, spec[i:i + m], 1)
        return job

    run_jobs([forward(lo, hi) for lo, hi in _ranges(shape[0], step, workers)], workers)
    pfft.c2c(spec, (0,), True, 0, spec, workers)
    spec *= spectrum
    pfft.c2c(spec, (0,), False, 2, spec, workers)
    first, count = crop[0].start, crop[0].stop - crop[0].start

    def inverse(lo, hi):
        def job():
            buf = scratch(__name__, "slab", (step,) + shape[1:], compute)
            for i in range(lo, hi, step):
                m = min(step, hi - i)
                rows = buf[:m]
                pfft.c2r(spec[first + i:first + i + m], rest, shape[-1], False, 2, rows, 1)
                np.copyto(out[i:i + m], rows[(slice(None),) + crop[1:]], casting="unsafe")
        return job

    run_jobs([inverse(lo, hi) for lo, hi in _ranges(count, step, workers)], workers)
    return out


def _call_plan(x, w, border, cval, padding, origin):
    """Everything a call decides before transforming: (kind, shape, pads, n_out, compute,
    result dtype, the kernel's spectrum, crop)."""
    out = result_dtype(x.dtype, w.dtype)
    compute = image_compute_dtype(x.dtype, w.dtype)
    kind, shape, offsets = plan(x.shape, w.shape, border, cval, padding, origin,
                                np.dtype(compute).kind != "f")
    pads = image_padding(w.shape, padding, origin)
    n_out = image_output_shape(x.shape, pads, w.shape)
    spectrum = kernel_transform(w, shape, compute, offsets)
    start = tuple(k - 1 for k in w.shape) if kind == "padded" else (0,) * x.ndim
    crop = tuple(slice(s, s + m) for s, m in zip(start, n_out))
    return kind, shape, pads, n_out, compute, out, spectrum, crop


def correlate_in_slabs(pfft, x, w, *, border="constant", cval=0.0, padding="same", origin=0,
                       out_dtype=None):
    """correlate() of a real image with two or more axes through the transform engine
    ``pfft`` (see _correlate_slabs), slab by slab: scratch buffers, no fresh spectra per
    call (they were page-faulted in every time) and no whole-array passes over a cold
    cache."""
    kind, shape, pads, n_out, compute, out, spectrum, crop = _call_plan(x, w, border, cval, padding, origin)
    if out_dtype is not None:
        y = np.empty(n_out, dtype=compute)
        _correlate_slabs(pfft, x, spectrum, kind, shape, pads, border, cval, compute, crop, y)
        return round_saturate(y, out_dtype)
    y = np.empty(n_out, dtype=out)
    return _correlate_slabs(pfft, x, spectrum, kind, shape, pads, border, cval, compute, crop, y)


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    """y[i] = sum_j w[j] * xp[i + j] by one FFT (the kernel's transform from the LRU)."""
    import scipy.fft as sfft

    from candidates.runtime import threads

    x, w = np.asarray(x), np.asarray(w)
    real = image_compute_dtype(x.dtype, w.dtype).kind == "f"
    engine = pocketfft_with_out() if USE_POCKETFFT_OUT else None
    if real and x.ndim >= 2 and engine is not None:
        return correlate_in_slabs(engine, x, w, border=border, cval=cval, padding=padding,
                                  origin=origin, out_dtype=out_dtype)
    kind, shape, pads, n_out, compute, out, spectrum, crop = _call_plan(x, w, border, cval, padding, origin)
    axes = tuple(range(x.ndim))
    workers = threads()
    xc = x.astype(compute, copy=False)
    if kind == "padded":
        # pad straight to the transform length: one copy, no zero-padded second one. The
        # extra L - P samples (border values) never reach the valid part (see the header).
        padded = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, pads))
        extended = tuple((lo, hi + length - p) for (lo, hi), p, length in zip(pads, padded, shape))
        xc = extend(xc, extended, border, cval)
    if real:   # s= zero-pads x to L ('zeros' plan) inside the transform's own copy
        product = sfft.rfftn(xc, s=shape, axes=axes, workers=workers)
        del xc
        product *= spectrum
        c = sfft.irfftn(product, s=shape, axes=axes, workers=workers, overwrite_x=True)
    else:
        product = sfft.fftn(xc, s=shape, axes=axes, workers=workers, overwrite_x=kind == "padded")
        del xc
        product *= spectrum
        c = sfft.ifftn(product, axes=axes, workers=workers, overwrite_x=True)
    del product
    y = c[crop]
    if out_dtype is not None:
        return round_saturate(y, out_dtype)
    if y.dtype == out and c.nbytes <= 2 * y.nbytes:
        return y       # a view of c, which is at most twice as large: no full-size copy
    return np.ascontiguousarray(y, dtype=out)
