# fftconvolve_scipy: the peer people reach for -- pad by the border, then
# scipy.signal.fftconvolve of the padded image with the reversed kernel, 'valid' part.
#
#   x --np.pad(border)--> xp (P = n + lo + hi per axis)     v = w reversed on every axis
#                 |                                             |
#                 +--> fftconvolve(xp, v, 'valid') <------------+
#                      (scipy: rfftn of both at next_fast_len(P + K - 1), product,
#                       irfftn, keep c[K-1 : P])  ->  y  (n_out = P - K + 1)
#
# Algorithm: correlating with w is convolving with v = w reversed; fftconvolve computes the
#   linear convolution with whole-image transforms of length P + K - 1 (fast length) and
#   crops its 'valid' part. Every border and padding ('same', 'valid', 'full', padding
#   wider than the image, 'wrap' included) is numpy.pad's before the transform, so the FFT
#   only ever sees a linear problem. FFT workers: scipy.fft.set_workers(threads()).
#   Nothing is cached -- the kernel is transformed on every call. That is the point: this
#   module is the peer as users call it, beside our fft_scipy (cached kernel transform,
#   transform length P instead of P + K - 1) and fft_tiled_scipy (tiles, bounded memory).
# Wins: large kernels (from ~15x15 on 1000^2 float32, where it overtakes OpenCV's direct
#   filter2D), any rank.
# Does not win: small kernels (direct is cheaper), huge images (whole-image temporaries:
#   padded image, two spectra, inverse -- 1.6-2.6 GB for 10000^2 float32 with 15x15),
#   repeated calls with one kernel (the kernel transform is redone every call).
# Does not apply: non-finite inputs (one NaN/Inf spreads over the output; the harness skips
#   'fft' candidates on those cases). bfloat16 has no numpy dtype: refused.
# Numerics: the normwise 'fft' model (|err| ~ u * log2(L) * ||xp||_2 * ||w||_2 for every
#   output). scipy keeps float32 as float32 (complex64 transforms), upcasts float16 to
#   float32 and mixed inputs to their common type; inputs are cast here to the compute type
#   of refimpl.dtypes.result_dtype (float32 for float16 and integer images, float64 with a
#   float64 kernel), and the result cast back: float16 rounded once at the end, an integer
#   out_dtype rounded half to even and saturated (refimpl.dtypes.round_saturate).
from __future__ import annotations

import numpy as np

from candidates.runtime import extend
from refimpl.dtypes import compute_dtype, result_dtype, round_saturate
from refimpl.geometry import image_padding

LIBRARY = "scipy"
DEVICE = "cpu"
ERROR = "fft"


def supports(spec):
    if "bfloat16" in spec.dtypes:
        return "bfloat16 has no numpy dtype for scipy.signal"
    return None


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    return signal_correlate("fftconvolve", x, w, border=border, cval=cval, padding=padding,
                            origin=origin, out_dtype=out_dtype)


def signal_correlate(function, x, w, *, border="constant", cval=0.0, padding="same", origin=0,
                     out_dtype=None):
    """Correlation through scipy.signal's ``function`` ('fftconvolve' or 'oaconvolve'):
    border padding first, the kernel reversed, the 'valid' part; our dtype rules."""
    import scipy.fft
    import scipy.signal

    from candidates.runtime import threads

    x, w = np.asarray(x), np.asarray(w)
    out = result_dtype(x.dtype, w.dtype)
    compute = compute_dtype(out)
    pads = image_padding(w.shape, padding, origin)
    xp = extend(x.astype(compute, copy=False), pads, border, cval)
    v = np.ascontiguousarray(np.flip(w.astype(compute, copy=False)))
    with scipy.fft.set_workers(threads()):
        y = getattr(scipy.signal, function)(xp, v, mode="valid")
    if out_dtype is not None:
        return round_saturate(y, out_dtype)
    return y.astype(out, copy=False)
