# conv_torch: torch.nn.functional.conv1d/2d/3d on a (1, 1, *spatial) view (oneDNN on CPU,
# cuDNN when the tensors are on a GPU).
#
#   x (H, W) -> (1, 1, H, W) --border--> xp --conv2d(weight (1, 1, kh, kw))--> y (H', W')
#
# Algorithm: torch's direct/GEMM convolution after extending the image by the border:
#   F.pad with a value for 'constant'; an index gather per axis for the other borders,
#   which also covers padding wider than the image (F.pad 'reflect' refuses that) and
#   'symmetric' (torch has none).
# Wins: medium kernels on batches and channels (layer shapes); keeps tensors on their device.
# Does not win: single-channel images with large kernels (no FFT path: 63x63 on 1000x1000
#   took ~16 s here), tiny images (call overhead).
# Applies: 1 to 3 spatial axes; float16 and integer images are computed in float32.
# Numerics: float accumulation in the compute type, oneDNN's blocked order: 'direct' bound.
from __future__ import annotations

import numpy as np

from candidates.torch_support import gather_border, to_native  # noqa: F401  (the module's to_native)
from refimpl.dtypes import result_dtype
from refimpl.geometry import image_padding

LIBRARY = "torch"
DEVICE = "cpu"
ERROR = "direct"
NONFINITE = True
EXACT_INT_BITS = 24   # integer sums in float32 (integer-valued, so exact up to 2**24)
MAX_WORK = 5e9  # multiply-adds; a 63x63 kernel on 1000x1000 (4e9) took ~16 s


def supports(spec):
    if len(spec.shapes[0]) > 3:
        return "torch convolutions have at most 3 spatial axes"
    if any(d.startswith("complex") for d in spec.dtypes):
        return "complex convolution is not run through torch here"
    return None


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    import torch
    import torch.nn.functional as F

    names = {torch.float16: "float16", torch.bfloat16: "float32", torch.float32: "float32",
             torch.float64: "float64"}
    out = result_dtype(names.get(x.dtype, "uint8"), names.get(w.dtype, "uint8"))
    compute = torch.float64 if out == np.float64 else torch.float32
    pads = image_padding(tuple(w.shape), padding, origin)
    xp = x.to(compute)[None, None]
    if border == "constant":
        flat = [p for lo_hi in reversed(pads) for p in lo_hi]
        xp = F.pad(xp, flat, mode="constant", value=float(cval))
    else:
        for axis, (lo, hi) in enumerate(pads):
            if lo or hi:
                xp = gather_border(xp, axis + 2, lo, hi, border)
    conv = (F.conv1d, F.conv2d, F.conv3d)[x.ndim - 1]
    y = conv(xp, w.to(compute)[None, None])[0, 0]
    if out_dtype is not None:
        if np.dtype(out_dtype).kind in "iu":
            info = np.iinfo(out_dtype)
            y = y.round().clamp(info.min, info.max)
        return y.to(getattr(torch, np.dtype(out_dtype).name))
    return y.to(getattr(torch, out.name))
