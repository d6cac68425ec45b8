# windowed_numpy: every output sample is the dot product of its window with the kernel.
#
#   xp = pad(x)          windows = sliding_window_view(xp, w.shape)   (a view, no copy)
#   y[i] = sum over taps j of  windows[i][j] * w[j]     (tensordot: one matrix-vector
#                                                        product per block of rows)
#
# Wins: small images with large kernels (a 64x64 image with a 15x15 kernel, 128x128 with
# 25x25: about 1.2-2x faster than shift_add_numpy and scipy.ndimage, one thread), where
# the windows stay in cache and one BLAS product replaces one pass per tap.
# Does not win: large images or small kernels (256x256 with 3x3: 2-4x slower than
# shift_add_numpy): the block copy of the windows is K times the output, memory bound.
# Applies: every case (N-D, every border, padding wider than the image via numpy.pad).
# Numerics: a direct sum in the result dtype (float32 for float16/integer images), one
# rounding per tap at most: the 'direct' bound, gamma_K. Integer image, integer kernel and
# integer out_dtype: int64 sums, exact while every partial sum stays below 2**63. Every
# tap is multiplied, so NaN/Inf land where the oracle's IEEE sum puts them.
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from refimpl.dtypes import result_dtype, round_saturate, sum_dtype
from refimpl.geometry import image_padding

LIBRARY = "numpy"
DEVICE = "cpu"
ERROR = "direct"
NONFINITE = True
EXACT_INT_BITS = 63
BLOCK = 2**22      # window elements copied per tensordot (32 MiB in float64)


def supports(spec):
    return None


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    out = result_dtype(x.dtype, w.dtype)
    acc = sum_dtype(x.dtype, w.dtype, cval, out_dtype)     # int64 when the sum must be exact
    exact = acc.kind == "i"
    kwargs = {"constant_values": int(cval) if exact else cval} if border == "constant" else {}
    xp = np.pad(x.astype(acc, copy=False), image_padding(w.shape, padding, origin),
                mode=border, **kwargs)
    windows = sliding_window_view(xp, w.shape)
    y = np.empty(windows.shape[:x.ndim], dtype=acc)
    rows = max(1, BLOCK // max(1, windows[:1].size))
    for i in range(0, y.shape[0], rows):
        y[i:i + rows] = np.tensordot(windows[i:i + rows], w.astype(acc, copy=False), axes=w.ndim)
    return round_saturate(y, out_dtype) if out_dtype is not None else y.astype(out, copy=False)
