# gaussianblur_opencv: OpenCV's cv2.GaussianBlur with our kernel size and sigma.
#
# Algorithm: separable direct filter (sepFilter2D: a row pass into a ring buffer of rows,
#   a column pass over it, SIMD, multithreaded), ksize = 2 * int(truncate * sigma + 0.5) + 1
#   per axis and sigmaX / sigmaY given. OpenCV samples exactly our kernel: checked here,
#   getGaussianKernel(2r + 1, sigma) equals refimpl.gaussian.gaussian_kernel1d(sigma, r) to
#   within 1e-15 relative for sigma 0.3 .. 50 (tests/test_gaussian.py keeps the check).
#
#       native border (not wrap; constant only with cval 0)     otherwise
#       +-------+                                             +---------------+
#       |   x   |  -> GaussianBlur(x, border)                 | pad r | x | r |  copyMakeBorder
#       +-------+                                             +---------------+  -> blur, crop
# Wins: 2-D float32 images with sigma up to ~3 (a short separable kernel, one pass over
#   memory); the peer to beat for image smoothing.
# Does not win: large sigma (cost grows with 2r + 1 per axis; the recursive iir_numba is
#   flat in sigma), N-D volumes (not offered).
# Applies: 1-D and 2-D images, and (H, W, C) images with C <= 4 and sigma 0 on the channel
#   axis. GaussianBlur refuses BORDER_WRAP ("columnBorderType != BORDER_WRAP"): wrap and a
#   nonzero cval go through copyMakeBorder, which matches numpy.pad for padding wider than
#   the image (checked in tests). Integer images (uint8, uint16, int16, ...) are computed
#   in float32: OpenCV's own 8-bit GaussianBlur is fixed-point (a 16-bit kernel) and is
#   off by one from the correctly rounded result on 1-4% of camera() pixels (max error
#   1.2 grey levels at sigma 5), outside our bound, so it is never used. float16 runs in
#   float32.
# Numerics: float32 (or float64) accumulation of two short 1-D passes, intermediate
#   rounded to the working type: 'direct' bound.
from __future__ import annotations

import numpy as np

from refimpl.dtypes import result_dtype, round_saturate
from refimpl.pad import LIBRARY_NAMES

LIBRARY = "cv2"
DEVICE = "cpu"
ERROR = "direct"
NONFINITE = True   # no zero taps: NaN/Inf spread as in the oracle


def _sigmas(sigma, ndim):
    if isinstance(sigma, (tuple, list)):
        return tuple(float(s) for s in sigma)
    return (float(sigma),) * ndim


def supports(spec):
    shape = spec.shapes[0]
    sigmas = _sigmas(spec.kwargs["sigma"], len(shape))
    if len(shape) == 3:
        if sigmas[2] != 0 or shape[2] > 4:
            return "3-D images must be (H, W, C) with C <= 4 and sigma 0 on the channel axis"
    elif len(shape) not in (1, 2):
        return "GaussianBlur takes 1-D and 2-D images (and images with up to 4 channels)"
    if spec.dtype.startswith("complex") or spec.dtype == "bfloat16":
        return f"dtype {spec.dtype} is not an OpenCV depth"
    return None


def gaussian(x, sigma, *, border="constant", cval=0.0, truncate=4.0, out_dtype=None):
    import cv2

    sigmas = _sigmas(sigma, x.ndim)
    out = result_dtype(x.dtype)
    compute = np.float64 if out == np.float64 else np.float32
    one_d = x.ndim == 1
    src = np.ascontiguousarray(x[None, :] if one_d else x, dtype=compute)
    sy, sx = (0.0, sigmas[0]) if one_d else sigmas[:2]
    ry, rx = int(truncate * sy + 0.5), int(truncate * sx + 0.5)
    if ry == 0 and rx == 0:
        y = src.copy()
    elif border != "wrap" and (border != "constant" or cval == 0):
        code = getattr(cv2, LIBRARY_NAMES["opencv"][border])
        y = cv2.GaussianBlur(src, (2 * rx + 1, 2 * ry + 1), sigmaX=sx, sigmaY=sy, borderType=code)
    else:
        code = getattr(cv2, LIBRARY_NAMES["opencv"][border])
        xp = cv2.copyMakeBorder(src, ry, ry, rx, rx, code, value=[cval] * 4)
        y = cv2.GaussianBlur(xp, (2 * rx + 1, 2 * ry + 1), sigmaX=sx, sigmaY=sy,
                             borderType=cv2.BORDER_CONSTANT)
        y = y[ry: ry + src.shape[0], rx: rx + src.shape[1]]
    if y.ndim < src.ndim:  # OpenCV drops a trailing channel axis of 1
        y = y[..., None]
    if one_d:
        y = y[0]
    return round_saturate(y, out_dtype) if out_dtype is not None else y.astype(out, copy=False)
