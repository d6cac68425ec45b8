# fft_cupy: pad by the border, then one real FFT linear correlation on the GPU (cuFFT
# through cupy.fft), the kernel's transform cached -- fft_scipy's algorithm on CuPy arrays.
#
#   x --extend(border, to L)--> xp (P = n + lo + hi per axis, extended to L >= P, 7-smooth)
#                          |  rfftn (cuFFT R2C, length L)
#                          v
#   w --reverse--> v --rfftn(L)--> V   (cached: candidates.runtime.KernelCache, keyed by
#                          |            w's values, L, the compute dtype, the device)
#              Y = XP * V  (in place)
#                          |  irfftn(L)
#                          v
#   c (L per axis) --keep c[K-1 : P]--> y     (the terms the wrap-around folds back land on
#                                              indices <= K-2 only: the overlap-save rule)
#
# Algorithm: see fft_scipy's header; here every array stays on the device. The border
#   extension to L is one gather per axis with refimpl.pad.source_index (any border, any
#   width; constant: cupy.pad with cval), so the FFT only sees a linear problem and 'wrap'
#   gives circular convolution on x's grid. L per axis is the next 2-3-5-7-smooth size
#   >= P (cuFFT's fast radices). The cache compares the kernel's bytes on the host: one small
#   device-to-host copy per call (a synchronisation), instead of transforming it again.
# Wins: large kernels (>= ~15x15) on big 2-D images on a GPU: O(L log L) whatever the kernel
#   size (the seed's 9000x9000 with 15x15 took ~1 s on a GPU without transfers).
# Does not win: small kernels (3x3..7x7: ndimage_cupy or direct_triton do K multiply-adds per
#   pixel in one pass), small images (launch and planning overhead), memory-tight GPUs
#   (temporaries ~2.5x the float32 image: padded image, spectrum, inverse, plus the cached
#   kernel spectrum and cuFFT's work area).
# Does not apply: non-finite inputs (one NaN/Inf spreads over the whole output; the harness
#   skips 'fft' candidates on those cases); bfloat16 (CuPy has none); no GPU.
# Numerics: the normwise 'fft' model (|err| ~ u * log2(L) * ||xp||_2 * ||w||_2 for every
#   output). cupy.fft keeps single precision: float32 -> complex64 transforms; float16 and
#   integer images are computed in float32 (float64 with a float64 kernel: refimpl.dtypes),
#   rounded once at the end; an integer out_dtype is rounded half to even and saturated.
#   Complex inputs use fftn/ifftn, no conjugation.
from __future__ import annotations

import numpy as np

from candidates.correlate.ndimage_cupy import saturate
from candidates.runtime import KernelCache, extend
from refimpl.dtypes import image_compute_dtype, result_dtype
from refimpl.geometry import image_padding

LIBRARY = "cupy"
DEVICE = "gpu"
ERROR = "fft"

CACHE_ENTRIES = 8
CACHE_BYTES = 1 << 30         # device memory for kept kernel transforms, all together

_cache = KernelCache(CACHE_ENTRIES, CACHE_BYTES, nbytes=lambda s: int(s.nbytes))


def supports(spec):
    if "bfloat16" in spec.dtypes:
        return "CuPy has no bfloat16"
    return None


def to_native(a):
    import cupy

    return cupy.asarray(a)


def smooth_length(n: int) -> int:
    """The smallest 2-3-5-7-smooth integer >= n (cuFFT's fast sizes).

    >>> [smooth_length(n) for n in (1, 11, 13, 17, 1013, 1024)]
    [1, 12, 14, 18, 1024, 1024]
    """
    best = None
    p7 = 1
    while p7 < 2 * n:
        p5 = p7
        while p5 < 2 * n:
            p3 = p5
            while p3 < 2 * n:
                p2 = p3
                while p2 < n:
                    p2 *= 2
                if best is None or p2 < best:
                    best = p2
                p3 *= 3
            p5 *= 5
        p7 *= 7
    return best


def clear_cache() -> None:
    _cache.clear()


def cache_info() -> dict:
    return _cache.info()


def kernel_transform(xp, fft, w, shape, compute, device="cpu"):
    """FFT of the reversed kernel zero-padded to ``shape``, from the LRU when possible."""
    host = np.ascontiguousarray(w.get() if hasattr(w, "get") else np.asarray(w))

    def make():
        v = xp.flip(w.astype(compute, copy=False))
        axes = tuple(range(w.ndim))
        if np.dtype(compute).kind == "c":
            return fft.fftn(v, s=tuple(shape), axes=axes)
        return fft.rfftn(v, s=tuple(shape), axes=axes)

    return _cache.get(host, (tuple(shape), np.dtype(compute).str, device), make)


def correlate_with(xp, fft, x, w, *, border="constant", cval=0.0, padding="same", origin=0,
                   out_dtype=None, device="cpu"):
    """The algorithm, for an array module ``xp`` and its FFT module ``fft``."""
    out = result_dtype(x.dtype, w.dtype)
    compute = image_compute_dtype(x.dtype, w.dtype)
    real = compute.kind == "f"
    pads = image_padding(tuple(w.shape), padding, origin)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, pads))
    shape = tuple(smooth_length(p) for p in padded)
    # extend straight to the transform length: the extra L - P border samples never reach
    # the kept part (see the header)
    extended = tuple((lo, hi + length - p) for (lo, hi), p, length in zip(pads, padded, shape))
    xpad = extend(x.astype(compute, copy=False), extended, border, cval, xp)
    axes = tuple(range(x.ndim))
    spectrum = kernel_transform(xp, fft, w, shape, compute, device)
    if real:
        product = fft.rfftn(xpad, axes=axes)
        del xpad
        product *= spectrum
        c = fft.irfftn(product, s=shape, axes=axes)
    else:
        product = fft.fftn(xpad, axes=axes)
        del xpad
        product *= spectrum
        c = fft.ifftn(product, axes=axes)
    del product
    y = c[tuple(slice(k - 1, p) for k, p in zip(w.shape, padded))]
    if out_dtype is not None:
        return saturate(xp, y, out_dtype)
    return xp.ascontiguousarray(y.astype(out, copy=False))


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    import cupy
    import cupy.fft

    return correlate_with(cupy, cupy.fft, x, w, border=border, cval=cval, padding=padding,
                          origin=origin, out_dtype=out_dtype,
                          device=f"cuda:{cupy.cuda.Device().id}")
