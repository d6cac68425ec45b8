# direct_triton: a tiled direct 2-D correlation written in Triton, every border computed in
# the kernel from index arithmetic (no padded copy of the image).
#
#   program (tile t, plane b) computes y[b, oy0:oy0+BH, ox0:ox0+BW]:
#
#     acc[BH, BW] = 0                                  (float32; float64 for float64 results)
#     for i in 0..KH-1:   rows = src(oy + i - lo_h, H)        one index map per tap row
#       for j in 0..KW-1: cols = src(ox + j - lo_w, W)        and per tap column
#         acc += w[i, j] * x[b, rows, cols]                   (cval where 'constant' is outside)
#     y[b, oy, ox] = acc  (masked at the tile edge, rounded once to the result dtype)
#
#   src(i, n) is refimpl.pad.source_index in integer arithmetic (BORDER is a constexpr):
#     constant   clamp(i, 0, n-1) for a safe address, the value replaced by cval outside
#     edge       clamp(i, 0, n-1)
#     symmetric  m = i mod 2n (non-negative);     m < n ? m : 2n - 1 - m
#     reflect    m = i mod (2n-2) (1 when n = 1); m < n ? m : 2n - 2 - m
#     wrap       i mod n
#   "mod" is ((i % p) + p) % p: Triton's % truncates like C (checked under the interpreter),
#   so this is non-negative on both. The maps are periodic, so padding wider than the
#   image (repeated reflection, numpy.pad's rule) needs nothing more.
#
# Algorithm: direct sum, one output tile per program; the taps' loads hit L1/L2 (each input
#   sample is read KH*KW times from cache, once from DRAM). 'same' with origin, 'valid' and
#   'full' are the per-side padding of refimpl.geometry.image_padding: only lo_h/lo_w and
#   the output size change. Any element strides (non-contiguous inputs are not copied).
# Wins: small and medium kernels on large 2-D images on a GPU (one pass over the image,
#   no padded copy, no transform), and every border at the same cost.
# Does not win: large kernels (>= ~15x15: K = KH*KW multiply-adds per pixel; the FFT path
#   costs O(log) per pixel), on a CPU (it runs there only through Triton's interpreter, for
#   verification).
# Applies: 1-D and 2-D images, and stacks of 2-D planes: a 3-D image whose kernel has
#   length 1 on one axis (an RGB image filtered per channel) runs that axis as the batch.
#   Real dtypes: float16/bfloat16/float32/float64 and integer images (converted to the
#   accumulation type first, exactly). Not: complex, true 3-D (and N-D) kernels.
# Numerics: every product summed in the accumulator (float32 for float16/bfloat16/float32/
#   integer images, float64 for float64 results), in tap order, rounded once at the end:
#   the 'direct' bound. cval is held in the accumulation type. An integer out_dtype is
#   rounded half to even and saturated after the kernel. Under Triton's interpreter (CPU
#   verification) a bfloat16 result is stored as float32 and rounded by torch: the
#   interpreter truncates float32 -> bfloat16, compiled Triton rounds to nearest even.
from __future__ import annotations

import functools
import math

import numpy as np

from candidates.triton_support import (BORDER_CODES, border_source_kernel, interpreting,
                                       max_offset, scalar, to_native)  # noqa: F401  (to_native: the module's)
from refimpl.dtypes import result_dtype
from refimpl.geometry import image_padding

LIBRARY = "triton"
DEVICE = "gpu"
ERROR = "direct"
NONFINITE = True      # every tap applied in IEEE arithmetic (verified under the interpreter)
EXACT_INT_BITS = 24   # integer images are summed in float32

# Planted mistakes for the verifier's own tests (tests/test_correlate_gpu.py): the launcher
# takes one of these codes; 0 is the kernel as written above.
_VARIANTS = {"reflect_off_by_one": 1, "constant_mask_dropped": 2, "float16_accumulation": 3}


def supports(spec):
    if spec.op != "correlate":
        return f"direct_triton computes correlate, not {spec.op}"
    if any(d.startswith("complex") for d in spec.dtypes):
        return "complex images are not computed by the Triton kernel"
    w_shape = spec.shapes[1]
    if len(w_shape) > 3 or (len(w_shape) == 3 and 1 not in w_shape):
        return ("direct_triton computes 1-D and 2-D correlations (and stacks of 2-D planes: "
                "a 3-D kernel with length 1 on one axis); this kernel is truly "
                f"{len(w_shape)}-D")
    return None


# ---------------------------------------------------------------------------------------
# Kernels (built on first use: importing this module never imports triton)
# ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def kernels():
    """The jitted kernels. Triton resolves the names a kernel uses in its module's globals,
    so the helpers are published there (this module, and implicit_gemm_triton's)."""
    import triton
    import triton.language as tl

    globals().update(triton=triton, tl=tl, border_source=border_source_kernel())


    @triton.jit(do_not_specialize=["H", "W"])      # n of border_source stays a tensor
    def correlate2d_kernel(x_ptr, w_ptr, y_ptr, cval_ptr,
                           H, W, OH, OW, KH, KW, LO_H, LO_W,
                           sxb, sxh, sxw, syb, syh, syw,
                           BORDER: tl.constexpr, ACC: tl.constexpr, OFF: tl.constexpr,
                           MASK_CONSTANT: tl.constexpr, WIDE: tl.constexpr,
                           BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
        pid = tl.program_id(0)
        b = tl.program_id(1)
        tiles_w = tl.cdiv(OW, BLOCK_W)
        oy = (pid // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)
        ox = (pid % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)
        if WIDE:                   # images past 2**31 elements: 64-bit offsets
            oy = oy.to(tl.int64)
            ox = ox.to(tl.int64)
            bb = b.to(tl.int64)
        else:
            bb = b
        cval = tl.load(cval_ptr)
        acc = tl.zeros([BLOCK_H, BLOCK_W], dtype=ACC)
        x_plane = x_ptr + bb * sxb
        for i in range(KH):
            r = oy + i - LO_H
            rows = border_source(r, H, BORDER, OFF)
            rows_in = (r >= 0) & (r < H)
            for j in range(KW):
                c = ox + j - LO_W
                cols = border_source(c, W, BORDER, OFF)
                wv = tl.load(w_ptr + i * KW + j).to(ACC)
                # every (rows, cols) is inside the image: no load mask needed
                v = tl.load(x_plane + rows[:, None] * sxh + cols[None, :] * sxw).to(ACC)
                if MASK_CONSTANT:
                    inside = rows_in[:, None] & ((c >= 0) & (c < W))[None, :]
                    v = tl.where(inside, v, cval)
                acc += wv * v
        keep = (oy < OH)[:, None] & (ox < OW)[None, :]
        y_tile = y_ptr + bb * syb + oy[:, None] * syh + ox[None, :] * syw
        tl.store(y_tile, acc.to(y_ptr.dtype.element_ty), mask=keep)

    return {"correlate2d": correlate2d_kernel, "tl": tl,
            "triton": triton}


def _pow2(n: int, lo: int, hi: int) -> int:
    """The power of two >= n, clipped to [lo, hi]."""
    return max(lo, min(hi, 1 << max(int(n) - 1, 0).bit_length()))


def _planes(shape, kernel):
    """(batch axis or None, H axis or None, W axis): how an image of 1-3 axes is laid out
    as a stack of 2-D planes (the batch axis is one where the kernel has length 1)."""
    nd = len(shape)
    if nd == 1:
        return None, None, 0
    if nd == 2:
        return None, 0, 1
    batch = max(a for a in range(3) if kernel[a] == 1)
    h, w = [a for a in range(3) if a != batch]
    return batch, h, w


def torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def dtype_name(t) -> str:
    return str(t.dtype).replace("torch.", "")


def result_name(xd: str, wd: str) -> str:
    """refimpl.dtypes.result_dtype, with torch's bfloat16 (which numpy lacks): bfloat16
    with bfloat16 stays bfloat16, with float64 gives float64, with anything else float32."""
    if "bfloat16" in (xd, wd):
        other = wd if xd == "bfloat16" else xd
        return {"bfloat16": "bfloat16", "float64": "float64"}.get(other, "float32")
    return result_dtype(xd, wd).name


def _launch(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None,
            variant=0):
    """Run the kernel on torch tensors (CUDA, or CPU under the interpreter). ``variant``
    selects a planted mistake (``_VARIANTS``; tests of the verifier only)."""
    import torch

    k = kernels()
    tl = k["tl"]
    out_name = result_name(dtype_name(x), dtype_name(w))
    acc_name = "float64" if out_name == "float64" else "float32"
    if variant == _VARIANTS["float16_accumulation"] and out_name == "float16":
        acc_name = "float16"
    acc_t = torch_dtype(acc_name)
    if not x.dtype.is_floating_point:
        x = x.to(acc_t)                                    # exact for 8/16-bit images
    pads = image_padding(tuple(w.shape), padding, origin)
    out_shape = tuple(n + lo + hi - kk + 1 for n, (lo, hi), kk in zip(x.shape, pads, w.shape))
    # an explicit out_dtype is converted from the accumulator: one rounding. The interpreter
    # converts float32 to bfloat16 by truncation (compiled Triton rounds to nearest even):
    # there a bfloat16 result is stored as float32 and rounded by torch.
    store_t = acc_t if out_dtype is not None or (interpreting() and out_name == "bfloat16") \
        else torch_dtype(out_name)
    y = torch.empty(out_shape, dtype=store_t, device=x.device)

    batch, ah, aw = _planes(tuple(x.shape), tuple(w.shape))

    def size(t, a):
        return 1 if a is None else t.shape[a]

    def stride(t, a):
        return 0 if a is None else t.stride(a)

    kh, kw = size(w, ah), w.shape[aw]
    wk = w.to(acc_t).reshape(kh, kw).contiguous()      # a length-1 batch axis drops out
    oh, ow = size(y, ah), size(y, aw)
    cval_t = scalar(float(cval), acc_t, x.device)
    block_h = _pow2(oh, 1, 16)
    block_w = _pow2(ow, 1 if interpreting() else 16, 32 if interpreting() else 64)
    wide = max(max_offset(x), max_offset(y)) >= 2**31 - 1
    grid = (math.ceil(oh / block_h) * math.ceil(ow / block_w), size(x, batch))
    k["correlate2d"][grid](
        x, wk, y, cval_t, size(x, ah), size(x, aw), oh, ow, kh, kw,
        0 if ah is None else pads[ah][0], pads[aw][0],
        stride(x, batch), stride(x, ah), stride(x, aw),
        stride(y, batch), stride(y, ah), stride(y, aw),
        BORDER=BORDER_CODES[border], ACC=getattr(tl, acc_name),
        OFF=int(variant == _VARIANTS["reflect_off_by_one"]),
        MASK_CONSTANT=border == "constant" and variant != _VARIANTS["constant_mask_dropped"],
        WIDE=wide, BLOCK_H=block_h, BLOCK_W=block_w, num_warps=4)
    if out_dtype is not None:
        target = np.dtype(out_dtype)
        if target.kind in "iu":
            info = np.iinfo(target)
            y = torch.round(y).clamp_(info.min, info.max)   # half to even, saturated
        return y.to(torch_dtype(target.name))
    return y.to(torch_dtype(out_name))


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    """y[i] = sum_j w[j] * xp[i + j], xp = x extended by ``border`` (in the kernel)."""
    return _launch(x, w, border=border, cval=cval, padding=padding, origin=origin,
                   out_dtype=out_dtype)
