# per_channel_opencv: the image-filtering candidate reused per channel: a conv layer as
# N * O * C/groups OpenCV filter2D correlations of single planes, summed per output channel.
#
#   xp = np.pad(x, border)                  for n, o (group g = o // Og):
#   +----+----+----+                           y[n, o] = bias[o] + sum_{c < Cg}
#   | c0 | c1 | c2 |  (planes)                     filter2D(xp[n, g*Cg + c], w[o, c])  'valid'
#   +----+----+----+
#
# This is the "naive per-channel loop" of the seed-multifilter question, with a fast 2-D
# filter inside: it shows what the plane-by-plane approach costs against im2col + GEMM.
# Wins: depthwise and few-channel layers on large planes (each call filters a whole plane
#   with SIMD; no im2col copy); any border, padding wider than the plane included.
# Does not win: many channels (N * O * C/groups calls of ~8 us each, plus a plane add per
#   call: R13 at N=1 is 262144 calls); GEMM-based candidates reuse each input plane for all
#   O filters at once.
# Applies: conv only; 2-D spatial, stride 1 and dilation 1 (filter2D has neither); any groups,
#   any border, any padding. Refuses layers of more than MAX_PLANES plane filterings
#   (N * O * C/groups), which would take seconds per call, and bfloat16 (no numpy dtype).
# Numerics: filter2D accumulates in the compute type (float32; float64 stays float64; float16
#   runs in float32 and is rounded once); planes are summed in the compute type: 'direct'
#   bound with K = C/groups * R * S. filter2D switches to a DFT for kernel areas >= ~50: the
#   'fft' (normwise) bound there, as candidates/correlate/filter2d_opencv.py.
from __future__ import annotations

import math

import numpy as np

from candidates.runtime import extend
from refimpl.dtypes import compute_dtype
from refimpl.geometry import conv_output_shape, layer_padding, positive_tuple

LIBRARY = "cv2"
DEVICE = "cpu"
DFT_AREA = 50          # below every kernel area at which filter2D switches to its DFT path
MAX_PLANES = 1 << 16   # N * O * C/groups filter2D calls; more takes seconds per conv


def ERROR(spec):
    return "fft" if math.prod(spec.shapes[1][2:]) >= DFT_AREA else "direct"


def supports(spec):
    if spec.op != "conv":
        return f"per_channel_opencv computes conv only, not {spec.op}"
    if "bfloat16" in spec.dtypes:
        return "numpy and OpenCV have no bfloat16 (conv_torch takes bfloat16 tensors)"
    x_shape, w_shape = spec.shapes[0], spec.shapes[1]
    if len(x_shape) != 4:
        n = len(x_shape) - 2
        axes = "axes" if n > 1 else "axis"
        return f"filter2D filters 2-D planes; this layer has {n} spatial {axes}"
    kw = spec.kwargs
    if positive_tuple(kw["stride"], 2, "stride") != (1, 1):
        return "filter2D has no stride (stride must be 1)"
    if positive_tuple(kw["dilation"], 2, "dilation") != (1, 1):
        return "filter2D has no dilation (dilation must be 1)"
    planes = x_shape[0] * w_shape[0] * w_shape[1]
    if planes > MAX_PLANES:
        return (f"{planes} plane filterings (N*O*C/groups) > {MAX_PLANES}: per-call overhead "
                "would take seconds; use im2col_numpy or conv_torch")
    return None


def conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, border="constant",
         cval=0.0):
    import cv2

    out_dtype = np.result_type(*[a.dtype for a in (x, w, bias) if a is not None])
    compute = compute_dtype(out_dtype)
    depth = cv2.CV_32F if compute == np.float32 else cv2.CV_64F
    kernel = w.shape[2:]
    pads = layer_padding(x.shape[2:], kernel, padding, 1, 1)
    width = ((0, 0), (0, 0)) + tuple(pads)
    xp = np.ascontiguousarray(extend(x.astype(compute, copy=False), width, border, cval))
    wk = np.ascontiguousarray(w, dtype=compute)
    batch, out_channels, cg = x.shape[0], w.shape[0], w.shape[1]
    og = out_channels // groups
    rows, cols = conv_output_shape(x.shape[2:], kernel, pads)
    y = np.empty((batch, out_channels, rows, cols), dtype=compute)
    for n in range(batch):
        for o in range(out_channels):
            first = (o // og) * cg
            acc = y[n, o]
            for c in range(cg):
                # anchor (0, 0): output (i, j) reads xp[i:i+kh, j:j+kw]; the valid part is the
                # top-left rows x cols (the rest read filter2D's own border: dropped)
                plane = cv2.filter2D(xp[n, first + c], depth, wk[o, c], anchor=(0, 0),
                                     borderType=cv2.BORDER_CONSTANT)[:rows, :cols]
                if c == 0:
                    acc[...] = plane
                else:
                    acc += plane
            if bias is not None:
                acc += bias[o]
    return y.astype(out_dtype, copy=False)
