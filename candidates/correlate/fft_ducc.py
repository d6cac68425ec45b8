# fft_ducc: fft_scipy's algorithm with ducc0's transforms instead of scipy's pocketfft build.
#
#   x --border plan (fft_scipy.plan: 'zeros' / 'periodic' / 'padded')--> slabs of rows
#        |  ducc0.fft.r2c per slab (run_jobs threads)
#        v
#   half spectrum --ducc0.fft.c2c axis 0--> * V (the kernel's transform, fft_scipy's LRU)
#        |  --ducc0.fft.c2c axis 0, inverse--> --c2r per slab--> only the rows kept
#        v
#   y (a new array)
#
# Algorithm: exactly fft_scipy's slab route (fft_scipy.correlate_in_slabs, whose header
#   explains the plans, the overlap-save crop and the slabs); only the engine differs.
#   ducc0 is the successor of pocketfft by the same author, with the same r2c/c2c/c2r
#   arguments (out=, nthreads), and its transforms run 1.4-2x faster than scipy's
#   pocketfft build on an AVX-512 machine, with no planning step. The kernel's transform
#   is computed once by scipy.fft and shared with fft_scipy (same LRU, same bytes: the
#   spectrum does not depend on the engine).
# Wins: large kernels on 2-D float images, where fft_scipy wins, by the transforms' share
#   of the call (1.3-1.7x faster than fft_scipy on 1024^2 float32 with 31x31 and 63x63).
# Does not win: where fft_scipy does not: small kernels, and huge images (seed-fft-10k:
#   3x fft_tiled_scipy's time and image-sized temporaries).
# Does not apply: 1-D images and complex inputs (fft_scipy takes them through scipy.fft's
#   complex and 1-D routes), bfloat16; non-finite inputs as for every FFT candidate.
#   ducc0 is GPLv2+: an optional dependency (the 'ducc' extra); without it this candidate
#   reports "unavailable" and the default choice falls back to the next in its ranking.
# Numerics: fft_scipy's 'fft' model (normwise error ~ u * log2(L) * ||xp|| * ||w||);
#   float32 images are transformed in single precision (complex64), float64 in double.
from __future__ import annotations

import numpy as np

from refimpl.dtypes import image_compute_dtype

LIBRARY = "ducc0"
DEVICE = "cpu"
ERROR = "fft"


def supports(spec):
    for d in spec.dtypes:
        if d == "bfloat16":
            return "bfloat16 has no numpy dtype for ducc0"
        if d.startswith("complex"):
            return "complex inputs take fft_scipy's complex transforms"
    if len(spec.shapes[0]) < 2:
        return "1-D images take fft_scipy's scipy.fft route"
    return None


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    """y[i] = sum_j w[j] * xp[i + j] by one FFT through ducc0 (fft_scipy's slab route)."""
    import ducc0

    from candidates.correlate.fft_scipy import correlate_in_slabs

    x, w = np.asarray(x), np.asarray(w)
    if x.ndim < 2 or image_compute_dtype(x.dtype, w.dtype).kind != "f":
        raise ValueError(f"fft_ducc takes real images with two or more axes, got x of shape "
                         f"{x.shape} and dtypes {x.dtype}/{w.dtype}: use fft_scipy")
    return correlate_in_slabs(ducc0.fft, x, w, border=border, cval=cval, padding=padding,
                              origin=origin, out_dtype=out_dtype)


def clear_cache() -> None:
    """Forget the kernel transforms and scratch buffers (fft_scipy's: they are shared)."""
    from candidates.correlate.fft_scipy import clear_cache as clear

    clear()
