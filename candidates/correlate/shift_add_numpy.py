# shift_add_numpy: one shifted multiply-add of the padded image per kernel tap.
#
#   xp = pad(x)                       y = sum over taps j of  w[j] * xp[j : j + out]
#   +---------+                       (the "roll" method people reinvent)
#   | . . . . |  --shift by j-->  w[j] * view   -->  y += ...
#   +---------+
#
# Wins: tiny kernels (3x3) on any rank and any border, no dependency but numpy.
# Does not win: large kernels (K full passes over the image, memory bound).
# Applies: every case (N-D, every border, padding wider than the image via numpy.pad).
# Numerics: accumulates in the result dtype (float32 for float16/integer images), one
# rounding per tap: the 'direct' bound, gamma_K. Integer image, integer kernel and integer
# out_dtype: int64 sums, exact while every partial sum stays below 2**63. Every tap is
# applied when the image holds NaN/Inf (0 * Inf is NaN, as in the oracle).
from __future__ import annotations

import numpy as np

from candidates.runtime import extend
from refimpl.dtypes import result_dtype, round_saturate, sum_dtype
from refimpl.geometry import image_output_shape, image_padding

LIBRARY = "numpy"
DEVICE = "cpu"
ERROR = "direct"
NONFINITE = True
EXACT_INT_BITS = 63
MAX_WORK = 2e10  # multiply-adds; one pass per tap: about 1 GMAC/s on 2 cores


def supports(spec):
    return None


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    out = result_dtype(x.dtype, w.dtype)
    acc = sum_dtype(x.dtype, w.dtype, cval, out_dtype)
    exact = acc.kind == "i"
    pads = image_padding(w.shape, padding, origin)
    xp = extend(x.astype(acc, copy=False), pads, border, int(cval) if exact else cval)
    out_shape = image_output_shape(x.shape, pads, w.shape)
    w = w.astype(acc, copy=False)
    y = np.zeros(out_shape, dtype=acc)
    skip_zeros = xp.dtype.kind in "iu" or bool(np.isfinite(xp).all())  # else 0 * Inf = NaN
    for j in np.ndindex(*w.shape):
        if w[j] != 0 or not skip_zeros:
            y += w[j] * xp[tuple(slice(a, a + n) for a, n in zip(j, out_shape))]
    return round_saturate(y, out_dtype) if out_dtype is not None else y.astype(out, copy=False)
