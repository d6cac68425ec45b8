# ndimage_cupy: cupyx.scipy.ndimage.correlate, scipy.ndimage's direct N-D filter on the GPU.
#
#   x (CuPy) --astype(compute)--> cupyx.scipy.ndimage.correlate(mode=<scipy name>, cval,
#                                 origin, output=compute) --> y           ('same')
#   x --extend by the border (index gather; cval pad)--> xp --correlate(mode='constant')
#     --> crop the fully inside part --> y                                ('valid', 'full')
#
# Algorithm: one CUDA thread per output element, a direct sum over the kernel's non-zero
#   taps (like scipy, zero weights are skipped), the border by index arithmetic inside the
#   kernel: names from refimpl.pad.LIBRARY_NAMES["scipy.ndimage"] (our 'symmetric' is its
#   'reflect', our 'reflect' its 'mirror'; its filters read 'wrap' as 'grid-wrap', period n).
#   Its index maps are periodic, so padding wider than the image works as numpy.pad's.
#   'valid'/'full' extend the image first by a gather with refimpl.pad.source_index
#   (constant: cupy.pad with cval), then correlate and crop.
# Wins: small kernels on any rank on a GPU (an elementwise kernel compiled per kernel shape
#   and border), every border.
# Does not win: large kernels (no FFT path: K multiply-adds per output, fft_cupy wins from
#   ~15x15), the first call of each kernel shape (NVRTC compiles the elementwise kernel).
# Applies: real images of any rank, float16 (computed in float32), integer images (converted
#   to the compute type first, so the sum never wraps). Not: complex (refused: scipy's
#   conjugation rule differs from ours), bfloat16 (CuPy has none), machines without a GPU.
# Numerics: cupyx sums in its weights' type, promote(input, float32): the image is converted
#   to the compute type of refimpl.dtypes.result_dtype first (float32, or float64 for a
#   float64 result), so that is the accumulation type: the 'direct' bound. An integer
#   out_dtype is rounded half to even and saturated after the filter.
from __future__ import annotations

import numpy as np

from candidates.runtime import extend
from refimpl.dtypes import image_compute_dtype, result_dtype
from refimpl.geometry import image_output_shape, image_padding
from refimpl.pad import LIBRARY_NAMES

LIBRARY = "cupy"
DEVICE = "gpu"
ERROR = "direct"


def supports(spec):
    if any(d.startswith("complex") for d in spec.dtypes):
        return "complex images are not run through cupyx.scipy.ndimage here"
    if "bfloat16" in spec.dtypes:
        return "CuPy has no bfloat16"
    return None


def to_native(a):
    import cupy

    return cupy.asarray(a)


def saturate(xp, y, out_dtype):
    """refimpl.dtypes.round_saturate in the array module ``xp``."""
    target = np.dtype(out_dtype)
    if target.kind in "iu":
        info = np.iinfo(target)
        y = xp.clip(xp.rint(y), info.min, info.max)
    return y.astype(target)


def correlate_with(xp, ndi, x, w, *, border="constant", cval=0.0, padding="same", origin=0,
                   out_dtype=None):
    """The algorithm, for an array module ``xp`` and its ndimage module ``ndi``."""
    out = result_dtype(x.dtype, w.dtype)
    compute = image_compute_dtype(x.dtype, w.dtype)
    x = x.astype(compute, copy=False)      # cupyx sums in promote(x, float32)
    w = w.astype(compute, copy=False)
    if padding == "same":
        y = ndi.correlate(x, w, output=compute, mode=LIBRARY_NAMES["scipy.ndimage"][border],
                          cval=cval, origin=origin)
    else:
        pads = image_padding(tuple(w.shape), padding, origin)
        xpad = extend(x, pads, border, cval, xp)
        y = ndi.correlate(xpad, w, output=compute, mode="constant")
        # origin 0 anchors at k//2: the fully inside outputs start there
        n_out = image_output_shape(x.shape, pads, w.shape)
        y = y[tuple(slice(k // 2, k // 2 + n) for k, n in zip(w.shape, n_out))]
    if out_dtype is not None:
        return saturate(xp, y, out_dtype)
    return y.astype(out, copy=False)


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    import cupy
    import cupyx.scipy.ndimage as ndi

    return correlate_with(cupy, ndi, x, w, border=border, cval=cval, padding=padding,
                          origin=origin, out_dtype=out_dtype)
