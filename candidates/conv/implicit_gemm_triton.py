# implicit_gemm_triton: convolution layers as an implicit GEMM in Triton (the im2col matrix
# is never built: each tile of it is gathered from x inside the kernel), with bias and an
# optional ReLU fused into the epilogue.
#
#   per group g:   Y[m, o] = sum_k A[m, k] * B[k, o]  (+ bias[o]) (then max(., 0) for conv_relu)
#     m = (n, oh, ow)            M = N * OH * OW      output pixels
#     o                          Og = O / groups      output channels of the group
#     k = (c, r, s)              K = Cg * KH * KW     c-major, like w's memory: B is w itself
#     A[m, k] = xp[n, g*Cg + c, oh*sh - lo_h + r*dh, ow*sw - lo_w + s*dw]
#
#   program (m-tile, o-tile, g):  acc[BM, BN] = 0 (float32; float64 for float64)
#     for k0 in 0, BK, 2BK, ...:  a = gather A[m-tile, k0:k0+BK]   (border by index map)
#                                 b = load   B[k0:k0+BK, o-tile]
#                                 acc = tl.dot(a, b, acc)
#     epilogue: + bias, ReLU, one rounding to the result dtype, masked store.
#
# The border is computed in the gather by the same index map as direct_triton (refimpl.pad.
#   source_index in integer arithmetic: edge clamps, symmetric/reflect fold with period 2n /
#   2n-2, wrap is modulo, constant substitutes cval), so every border and padding wider than
#   the input are supported with no padded copy. Per-side padding, stride, dilation, groups
#   (depthwise included) are index arithmetic; the 'same' padding of refimpl.geometry
#   (JAX/TF rule with stride) is resolved on the host.
# Wins: layer shapes on a GPU where M and Og are large enough to fill tensor-core tiles
#   (ResNet/VGG 3x3 and 1x1 layers in float16; float32 through FMA with ieee precision);
#   the fused bias + ReLU epilogue saves one read and one write of the output against
#   conv-then-relu.
# Does not win: depthwise and small-channel layers (K = Cg*KH*KW is tiny: the dot tiles run
#   mostly empty), large filters (S1/S2: an FFT path does O(log) work per output), on a CPU
#   (it runs there only through Triton's interpreter, for verification).
# Applies: conv and conv_relu with 1 or 2 spatial axes, float16/float32/float64 (and
#   bfloat16 tensors given directly), every border. Not: 3 spatial axes (supports() says so).
# Numerics: products of the inputs, summed by tl.dot into a float32 accumulator (float64
#   for float64 results) with input_precision="ieee" (no TF32), the bias added in the
#   accumulator, rounded once at the store: the 'direct' bound. float16 inputs use tensor
#   cores (exact products, float32 sums). A constant border's cval that the float16 type
#   cannot hold exactly makes the call compute in float32 (cval must not be rounded).
#   Under Triton's interpreter (CPU verification) two of its gaps are bridged, numerics
#   unchanged: bfloat16 tiles are widened to float32 before tl.dot (its numpy dot mishandles
#   bfloat16; the widening is exact and bfloat16 products are exact in float32), and a
#   bfloat16 result is stored as float32 and rounded by torch (the interpreter truncates
#   float32 -> bfloat16; compiled Triton rounds to nearest even).
from __future__ import annotations

import functools
import math

from candidates.triton_support import (BORDER_CODES, border_source_kernel, interpreting,
                                       max_offset, scalar, to_native)  # noqa: F401  (to_native: the module's)
from refimpl.geometry import conv_output_shape, layer_padding, positive_tuple

LIBRARY = "triton"
DEVICE = "gpu"
ERROR = "direct"

_OPS = ("conv", "conv_relu")

# Planted mistakes for the verifier's own tests (tests/test_conv_gpu.py); 0 is the kernel
# as written above.
_VARIANTS = {"stride_phase": 1, "k_tail_unmasked": 2, "float16_accumulation": 3}


def supports(spec):
    if spec.op not in _OPS:
        return f"implicit_gemm_triton computes {', '.join(_OPS)}, not {spec.op}"
    if len(spec.shapes[0]) > 4:
        return "the Triton implicit GEMM is written for 1 and 2 spatial axes, not 3"
    return None


# ---------------------------------------------------------------------------------------
# Kernel (built on first use: importing this module never imports triton)
# ---------------------------------------------------------------------------------------

# GPU tile configurations the autotuner tries (BM, BN, BK, warps, stages), per input class;
# problems below TUNE_MACS multiply-adds run one fixed small tile instead (no tuning pass).
_GPU_CONFIGS = {
    "16bit": [(128, 128, 32, 8, 3), (128, 64, 32, 4, 4), (64, 128, 32, 4, 4), (64, 64, 32, 4, 4),
              (128, 128, 64, 8, 3)],
    "float32": [(64, 64, 16, 4, 3), (128, 64, 16, 8, 3), (64, 128, 16, 8, 3), (32, 64, 16, 4, 3)],
    "float64": [(32, 32, 16, 4, 2), (64, 32, 16, 4, 2), (64, 64, 16, 4, 2)],
}
TUNE_MACS = 1 << 24


@functools.lru_cache(maxsize=None)
def kernels():
    import triton
    import triton.language as tl

    globals().update(triton=triton, tl=tl, border_source=border_source_kernel())

    @triton.jit(do_not_specialize=["H", "W"])      # n of border_source stays a tensor
    def conv_kernel(x_ptr, w_ptr, b_ptr, y_ptr, cval_ptr,
                    H, W, OH, OW, KH, KW, SH, SW, LO_H, LO_W, DH, DW, M, K, CG, OG,
                    sxn, sxc, sxh, sxw, syn, syc, syh, syw,
                    BORDER: tl.constexpr, HAS_BIAS: tl.constexpr, RELU: tl.constexpr,
                    ACC: tl.constexpr, PRECISION: tl.constexpr, UPCAST: tl.constexpr,
                    PHASE: tl.constexpr, K_MASK: tl.constexpr, WIDE: tl.constexpr,
                    BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
                    GROUP_M: tl.constexpr):
        # tile order: GROUP_M m-tiles share each o-tile sweep (B stays in L2)
        pid = tl.program_id(0)
        g = tl.program_id(1)
        tiles_m = tl.cdiv(M, BM)
        tiles_n = tl.cdiv(OG, BN)
        per_group = GROUP_M * tiles_n
        first_m = (pid // per_group) * GROUP_M
        size_m = tl.minimum(tiles_m - first_m, GROUP_M)
        pid_m = first_m + (pid % per_group) % size_m
        pid_n = (pid % per_group) // size_m

        offs_m = pid_m * BM + tl.arange(0, BM)
        offs_n = pid_n * BN + tl.arange(0, BN)
        if WIDE:
            offs_m = offs_m.to(tl.int64)
        m_ok = offs_m < M
        n_ok = offs_n < OG
        pixels = OH * OW
        n_idx = offs_m // pixels
        rem = offs_m % pixels
        oh = rem // OW
        ow = rem % OW
        ih0 = oh * SH - LO_H + PHASE          # PHASE != 0 only in a planted mistake
        iw0 = ow * SW - LO_W + PHASE
        x_rows = x_ptr + n_idx * sxn + (g * CG) * sxc
        o_glob = g * OG + offs_n
        cval = tl.load(cval_ptr)
        taps = KH * KW
        acc = tl.zeros([BM, BN], dtype=ACC)
        for k0 in range(0, K, BK):
            offs_k = k0 + tl.arange(0, BK)
            if K_MASK:
                k_ok = offs_k < K
                kk = offs_k
            else:                              # planted: the K tail reads the last column
                k_ok = offs_k < K + BK
                kk = tl.minimum(offs_k, K - 1)
            c = kk // taps
            rs = kk % taps
            r = rs // KW
            s = rs % KW
            ih = ih0[:, None] + (r * DH)[None, :]
            iw = iw0[:, None] + (s * DW)[None, :]
            src_h = border_source(ih, H, BORDER, 0)
            src_w = border_source(iw, W, BORDER, 0)
            a_mask = m_ok[:, None] & k_ok[None, :]
            a = tl.load(x_rows[:, None] + c[None, :] * sxc + src_h * sxh + src_w * sxw,
                        mask=a_mask, other=0.0)
            if BORDER == 0:
                inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
                a = tl.where(inside, a, cval.to(a.dtype))
            b = tl.load(w_ptr + o_glob[None, :] * K + kk[:, None],
                        mask=k_ok[:, None] & n_ok[None, :], other=0.0)
            if UPCAST:      # bfloat16 under the interpreter: exact widening, same products
                a = a.to(tl.float32)
                b = b.to(tl.float32)
            acc = tl.dot(a, b, acc, input_precision=PRECISION, out_dtype=ACC)
        if HAS_BIAS:
            acc += tl.load(b_ptr + o_glob, mask=n_ok, other=0.0).to(ACC)[None, :]
        if RELU:
            acc = tl.maximum(acc, 0.0)
        y = y_ptr + n_idx[:, None] * syn + o_glob[None, :] * syc + oh[:, None] * syh \
            + ow[:, None] * syw
        tl.store(y, acc.to(y_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])

    tuned = {}
    if not interpreting():
        for name, configs in _GPU_CONFIGS.items():
            tuned[name] = triton.autotune(
                configs=[triton.Config({"BM": bm, "BN": bn, "BK": bk, "GROUP_M": 8},
                                       num_warps=warps, num_stages=stages)
                         for bm, bn, bk, warps, stages in configs],
                key=["M", "OG", "K", "KH", "KW", "SH", "SW"])(conv_kernel)
    return {"conv": conv_kernel, "tuned": tuned, "tl": tl}


# ---------------------------------------------------------------------------------------
# Host side
# ---------------------------------------------------------------------------------------

def _exact_in(value: float, dtype) -> bool:
    import torch

    return float(torch.tensor(value, dtype=dtype)) == value


def _launch(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, border="constant",
            cval=0.0, relu=False, variant=0):
    """The conv of torch tensors (CUDA, or CPU under the interpreter); ``variant`` selects a
    planted mistake (``_VARIANTS``, verifier tests only)."""
    import torch

    k = kernels()
    tl = k["tl"]
    present = [t for t in (x, w, bias) if t is not None]
    out_t = present[0].dtype
    for t in present[1:]:
        out_t = torch.promote_types(out_t, t.dtype)
    compute_t = out_t
    if compute_t in (torch.float16, torch.bfloat16) and border == "constant" \
            and not _exact_in(cval, compute_t):
        compute_t = torch.float32                        # cval must not be rounded
    acc_t = torch.float64 if compute_t == torch.float64 else torch.float32
    if variant == _VARIANTS["float16_accumulation"] and compute_t == torch.float16:
        acc_t = torch.float16
    nsp = x.ndim - 2
    stride = positive_tuple(stride, nsp, "stride")
    dilation = positive_tuple(dilation, nsp, "dilation")
    in_sp, k_sp = tuple(x.shape[2:]), tuple(w.shape[2:])
    pads = layer_padding(in_sp, k_sp, padding, stride, dilation)
    out_sp = conv_output_shape(in_sp, k_sp, pads, stride, dilation)
    if nsp == 1:                                          # 1-D as a 2-D plane of height 1
        x, w = x[:, :, None, :], w[:, :, None, :]
        stride, dilation, pads, out_sp = ((1,) + stride, (1,) + dilation, ((0, 0),) + pads,
                                          (1,) + out_sp)
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh, ow = out_sp
    og = o // groups
    K = cg * kh * kw
    M = n * oh * ow
    xc = x.to(compute_t)
    wc = w.to(compute_t).reshape(o, K).contiguous()
    bc = bias.to(acc_t).contiguous() if bias is not None else wc     # unused without bias
    # the interpreter converts float32 to bfloat16 by truncation (compiled Triton rounds to
    # nearest even): there the kernel stores float32 and torch rounds once
    store_t = torch.float32 if interpreting() and out_t == torch.bfloat16 else out_t
    y = torch.empty((n, o, oh, ow), dtype=store_t, device=x.device)
    cval_t = scalar(float(cval), compute_t, x.device)
    precision = "ieee"
    upcast = interpreting() and compute_t == torch.bfloat16
    acc_name = str(acc_t).replace("torch.", "")
    wide = max(max_offset(xc), max_offset(y)) >= 2**31 - 1
    phase = int(variant == _VARIANTS["stride_phase"] and max(stride) > 1)
    args = (xc, wc, bc, y, cval_t, h, wd, oh, ow, kh, kw, stride[0], stride[1], pads[0][0],
            pads[1][0], dilation[0], dilation[1], M, K, cg, og, *xc.stride(), *y.stride())
    flags = dict(BORDER=BORDER_CODES[border], HAS_BIAS=bias is not None, RELU=relu,
                 ACC=getattr(tl, acc_name), PRECISION=precision, UPCAST=upcast, PHASE=phase,
                 K_MASK=variant != _VARIANTS["k_tail_unmasked"], WIDE=wide)
    tuned = k["tuned"].get("float64" if compute_t == torch.float64 else
                           "float32" if compute_t == torch.float32 else "16bit")
    if tuned is not None and variant == 0 and M * og * K * groups >= TUNE_MACS:
        def grid(meta):
            return (math.ceil(M / meta["BM"]) * math.ceil(og / meta["BN"]), groups)
        tuned[grid](*args, **flags)
    else:
        bm = max(16, min(64, 1 << max(M - 1, 0).bit_length()))
        bn = max(16, min(64, 1 << max(og - 1, 0).bit_length()))
        bk = 16 if K <= 16 else 32
        grid = (math.ceil(M / bm) * math.ceil(og / bn), groups)
        k["conv"][grid](*args, **flags, BM=bm, BN=bn, BK=bk, GROUP_M=8, num_warps=4)
    y = y.to(out_t)
    return y[:, :, 0, :] if nsp == 1 else y


def conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, border="constant",
         cval=0.0):
    return _launch(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                   border=border, cval=cval)


def conv_relu(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
              border="constant", cval=0.0):
    """max(conv(...), 0) with the ReLU in the kernel's epilogue (one pass over y)."""
    return _launch(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                   border=border, cval=cval, relu=True)
