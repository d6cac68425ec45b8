# ndimage_scipy: scipy.ndimage.gaussian_filter, the Gaussian every scientist calls.
#
# Algorithm: separable: one scipy.ndimage.correlate1d pass per axis with sigma > 0, each
#   with scipy's sampled kernel (radius int(truncate * sigma + 0.5), the same formula as
#   our oracle), borders by scipy's line-buffer extension. Cost per pixel grows with
#   sigma: 2 * (2r + 1) multiply-adds in 2-D.
# Wins: N-D images of any rank, every border natively; small sigma.
# Does not win: large sigma on big images (no FFT or recursive path; single-threaded:
#   about 10x OpenCV's GaussianBlur at 4096x4096, sigma 5).
# Applies: every case (names translated: our 'symmetric' is scipy's 'reflect'). float16
#   is computed in float32 (scipy refuses float16); integer images get a floating output
#   array, so scipy's modulo-256 wrap never happens; out_dtype rounds and saturates after.
# Numerics: each pass accumulates in float64 internally and stores in the output array's
#   type (float32 between passes for float32 images): 'direct' bound (the kernel size K
#   of the 2-D product covers the k1 + k2 terms of two passes and the intermediate
#   rounding).
from __future__ import annotations

from refimpl.dtypes import compute_dtype, result_dtype, round_saturate
from refimpl.pad import LIBRARY_NAMES

LIBRARY = "scipy"
DEVICE = "cpu"
ERROR = "direct"
NONFINITE = True   # no zero taps: NaN/Inf spread as in the oracle


def supports(spec):
    if spec.dtype.startswith("complex") or spec.dtype == "bfloat16":
        return f"dtype {spec.dtype} is not run through scipy.ndimage here"
    return None


def gaussian(x, sigma, *, border="constant", cval=0.0, truncate=4.0, out_dtype=None):
    import scipy.ndimage as ndi

    out = result_dtype(x.dtype)
    compute = compute_dtype(out)
    x = x.astype(compute_dtype(x.dtype), copy=False)
    y = ndi.gaussian_filter(x, sigma, output=compute, mode=LIBRARY_NAMES["scipy.ndimage"][border],
                            cval=cval, truncate=truncate)
    return round_saturate(y, out_dtype) if out_dtype is not None else y.astype(out, copy=False)
