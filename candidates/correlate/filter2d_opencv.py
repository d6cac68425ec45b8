# filter2d_opencv: OpenCV's cv2.filter2D (a correlation, despite the name "filter").
#
# Algorithm: OpenCV picks per call: IPP/SIMD direct loops for small kernels, a DFT-based
#   path for kernel areas above ~50-130 (type dependent), plain direct otherwise.
# Wins: 2-D images with small to medium kernels; uint8 with native round-and-saturate.
# Does not win: huge kernels on huge images where a cached real FFT is cheaper.
# Applies: 1-D and 2-D images, and (H, W, C) images with a (kh, kw, 1) kernel (the same
#   kernel on every channel, C <= 4). Borders: OpenCV's own extension for 'same' when the
#   border is one filter2D accepts (not BORDER_WRAP, and constant only with cval 0);
#   otherwise the image is extended first with cv2.copyMakeBorder (which does wrap and
#   any cval) and filtered as 'valid'. float16 runs in float32.
#
#       'same', native border              copyMakeBorder route ('valid'/'full', wrap, cval)
#       +-------+  anchor = k//2+origin     +-----------+   anchor (0, 0), crop
#       |  x    |  -> y                     | pad | x | |   -> y = top-left out region
#       +-------+                           +-----------+
# Numerics: float accumulation in the result type; the DFT path for large kernels has the
#   'fft' (normwise) error, so the model is chosen by kernel area.
from __future__ import annotations

import math
import platform

import numpy as np

from refimpl.dtypes import compute_dtype, result_dtype, round_saturate
from refimpl.geometry import as_tuple, image_output_shape, image_padding
from refimpl.pad import LIBRARY_NAMES

LIBRARY = "cv2"
DEVICE = "cpu"
# Kernel areas from which OpenCV's filter2D may take its DFT path: 130 for a float32 image
# filtered into float32 (on x86 with SSE3, which every x86-64 CPU has), 50 otherwise (a
# uint8 image into float32, float64). Measured on camera() in float32: 9x9 to 11x11 kernels
# stay within 0.05 of the direct bound.
DFT_AREA = 50
DFT_AREA_FLOAT32 = 130

_DEPTHS = {"uint8", "uint16", "int16", "float32", "float64", "float16"}


def ERROR(spec):
    out = result_dtype(*spec.dtypes[:2])
    float32 = spec.dtypes[0] in ("float32", "float16") and out in (np.float32, np.float16)
    limit = DFT_AREA_FLOAT32 if float32 and platform.machine() in ("x86_64", "AMD64") else DFT_AREA
    return "fft" if math.prod(spec.shapes[1][:2]) >= limit else "direct"


def EXACT_INT_BITS(spec):
    return 0 if ERROR(spec) == "fft" else 24   # float32 sums of integers on the direct path


def supports(spec):
    x_shape, w_shape = spec.shapes
    if len(x_shape) == 3:
        if w_shape[2] != 1 or x_shape[2] > 4:
            return "3-D images need a (kh, kw, 1) kernel and at most 4 channels"
    elif len(x_shape) not in (1, 2):
        return "filter2D takes 1-D and 2-D images (and images with up to 4 channels)"
    for d in spec.dtypes:
        if d not in _DEPTHS:
            return f"dtype {d} is not an OpenCV depth"
    return None


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    import cv2

    out = result_dtype(x.dtype, w.dtype)
    compute = compute_dtype(out)
    one_d = x.ndim == 1
    if one_d:
        x, w = x[None, :], w[None, :]
    kernel = np.ascontiguousarray(w.reshape(w.shape[:2]), dtype=compute)
    src = np.ascontiguousarray(x.astype(compute_dtype(x.dtype), copy=False))
    origins = (0,) + as_tuple(origin, 1, "origin") if one_d else origin
    pads = image_padding(w.shape, padding, origins)
    depth = cv2.CV_32F if compute == np.float32 else cv2.CV_64F
    native = padding == "same" and border != "wrap" and (border != "constant" or cval == 0)
    if native:
        anchor = (pads[1][0], pads[0][0])  # OpenCV's anchor is (column, row)
        code = getattr(cv2, LIBRARY_NAMES["opencv"][border])
        y = cv2.filter2D(src, depth, kernel, anchor=anchor, borderType=code)
    else:
        code = getattr(cv2, LIBRARY_NAMES["opencv"][border])
        (top, bottom), (left, right) = pads[0], pads[1]
        value = [cval] * 4
        # extend in the compute dtype: cval = 300 or 0.5 must not saturate or round to uint8
        xp = cv2.copyMakeBorder(src.astype(compute, copy=False), top, bottom, left, right, code,
                                value=value)
        if xp.ndim < src.ndim:  # OpenCV drops a trailing channel axis of 1
            xp = xp[..., None]
        y = cv2.filter2D(xp, depth, kernel, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
        y = y[tuple(slice(n) for n in image_output_shape(src.shape[:2], pads[:2], w.shape[:2]))]
    if y.ndim < x.ndim:
        y = y[..., None]
    if one_d:
        y = y[0]
    return round_saturate(y, out_dtype) if out_dtype is not None else y.astype(out, copy=False)
