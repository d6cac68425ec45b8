# cudnn_torch: cuDNN's convolutions through torch on CUDA tensors, with cuDNN's algorithm
# choice by heuristics (torch.backends.cudnn.benchmark off) and TF32 off (float32 class).
#
#   x (CUDA) --border--> xp --F.conv{1,2,3}d / conv_transpose / torch.nn.grad--> y (CUDA)
#                 |                    |
#   conv_torch's border logic    inside precision(benchmark, tf32): cudnn.benchmark and the
#   (F.pad, index gathers,       TF32 switches (torch.backends.cudnn.conv / cuda.matmul
#   index_add_ fold-back for the fp32_precision, or the legacy allow_tf32 flags) set for the
#   gradient): device-agnostic   call and restored after it, whatever the caller had
#
#   conv_relu: conv, then torch.relu as a second kernel (the unfused sequence that a fused
#   conv + bias + ReLU epilogue, implicit_gemm_triton's, is timed against).
#   Variants (one module each, same code): cudnn_autotune_torch (benchmark on: cuDNN times
#   its algorithms on the first call of each shape and keeps the fastest), cudnn_tf32_torch
#   (TF32 allowed: torch's own default for convolutions, its own precision class 'tf32').
#
# Wins: every layer shape on a GPU: cuDNN's tuned implicit-GEMM, Winograd and FFT kernels;
#   float16 on tensor cores. The border extension (non-constant borders) is one extra pass.
# Does not win: tiny layers (launch and dispatch overhead of ~10-30 us per op), grouped and
#   depthwise layers where cuDNN falls back to slow kernels, and non-constant borders or
#   padding wider than the input (a padded copy first). On a CPU it does not apply: no GPU,
#   no run ("unavailable: no GPU").
# Applies: conv, conv_relu, conv_transpose, conv_grad_input/weight/bias: every case of these
#   ops (1-3 spatial axes, every border and width, groups, bias).
# Numerics: float32 with TF32 off, float64: cuDNN sums in the input precision: the 'direct'
#   bound -- provided the algorithm cuDNN picks is a direct/GEMM one. Its heuristics (and the
#   benchmark autotuner) may pick Winograd or FFT algorithms, whose error is normwise; a case
#   where that leaves the elementwise bound is reported FAIL with its measured error (and is
#   not timed) rather than hidden by a looser class. float16/bfloat16: computed natively
#   (cuDNN accumulates half convolutions in float32, one rounding at the end) when nothing
#   else rounds: no bias (torch adds it after a rounded conv: two roundings), a cval the type
#   holds exactly, and for conv_grad_input torch's own zero padding (the fold-back of other
#   borders sums in the tensor's type); otherwise converted to float32 and rounded once at
#   the end, as conv_torch does.
from __future__ import annotations

import functools

import contextlib
from typing import NamedTuple

from candidates.conv import conv_torch as _portable
from candidates.torch_support import to_cuda as to_native  # noqa: F401  (the module's to_native)
from refimpl.geometry import layer_padding, positive_tuple

LIBRARY = "torch"
DEVICE = "gpu"
ERROR = "direct"

OPS = ("conv", "conv_relu", "conv_transpose", "conv_grad_input", "conv_grad_weight",
       "conv_grad_bias")


class Settings(NamedTuple):
    benchmark: bool     # torch.backends.cudnn.benchmark
    tf32: bool          # TF32 allowed in cuDNN convolutions and cuBLAS matmuls


SETTINGS = Settings(benchmark=False, tf32=False)


def supports(spec):
    if spec.op not in OPS:
        return f"cudnn_torch does not compute {spec.op}"
    return None


@contextlib.contextmanager
def precision(settings: Settings):
    """cuDNN's benchmark switch and the TF32 switches for one call, restored after it."""
    import torch

    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    new_api = hasattr(getattr(cudnn, "conv", None), "fp32_precision") \
        and hasattr(matmul, "fp32_precision")
    saved_benchmark = cudnn.benchmark
    if new_api:     # torch >= 2.9: the legacy allow_tf32 getters raise on mixed settings
        saved = (cudnn.conv.fp32_precision, matmul.fp32_precision)
        cudnn.conv.fp32_precision = matmul.fp32_precision = "tf32" if settings.tf32 else "ieee"
    else:
        saved = (cudnn.allow_tf32, matmul.allow_tf32)
        cudnn.allow_tf32 = matmul.allow_tf32 = settings.tf32
    cudnn.benchmark = settings.benchmark
    try:
        yield
    finally:
        cudnn.benchmark = saved_benchmark
        if new_api:
            cudnn.conv.fp32_precision, matmul.fp32_precision = saved
        else:
            cudnn.allow_tf32, matmul.allow_tf32 = saved


def _native16(tensors, border="constant", cval=0.0) -> bool:
    """Can these CUDA half tensors go to cuDNN as they are (one rounding, see the header)?"""
    import torch

    first = tensors[0]
    if not first.is_cuda or first.dtype not in (torch.float16, torch.bfloat16):
        return False
    if any(t.dtype != first.dtype for t in tensors[1:]):
        return False
    return border != "constant" or float(torch.tensor(cval, dtype=first.dtype)) == cval


# ---------------------------------------------------------------------------------------
# The ops, for any Settings (the variant modules call these with theirs)
# ---------------------------------------------------------------------------------------

def conv_with(settings, x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
              border="constant", cval=0.0):
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                  border=border, cval=cval)
    with precision(settings):
        if bias is None and _native16((x, w), border, cval):
            nsp = x.ndim - 2
            st = positive_tuple(stride, nsp, "stride")
            di = positive_tuple(dilation, nsp, "dilation")
            xin, torch_padding = _portable.conv_input(x, tuple(x.shape[2:]), tuple(w.shape[2:]),
                                                       st, padding, di, border, cval)
            return _portable.functional("conv", nsp)(xin, w, None, stride=st,
                                                      padding=torch_padding, dilation=di,
                                                      groups=groups)
        return _portable.conv(x, w, bias, **kwargs)


def conv_relu_with(settings, x, w, bias=None, **kwargs):
    import torch

    y = conv_with(settings, x, w, bias, **kwargs)
    return torch.relu(y)            # a second kernel: the unfused sequence


def conv_transpose_with(settings, x, w, bias=None, *, stride=1, padding=0, output_padding=0,
                        dilation=1, groups=1):
    with precision(settings):
        if bias is None and _native16((x, w)):
            return _portable.functional("conv_transpose", x.ndim - 2)(
                x, w, None, stride=stride, padding=padding, output_padding=output_padding,
                groups=groups, dilation=dilation)
        return _portable.conv_transpose(x, w, bias, stride=stride, padding=padding,
                                        output_padding=output_padding, dilation=dilation,
                                        groups=groups)


def conv_grad_input_with(settings, dy, w, input_shape, *, stride=1, padding=0, dilation=1,
                         groups=1, border="constant", cval=0.0):
    nsp = dy.ndim - 2
    st = positive_tuple(stride, nsp, "stride")
    di = positive_tuple(dilation, nsp, "dilation")
    pads = layer_padding(tuple(input_shape[2:]), tuple(w.shape[2:]), padding, st, di)
    with precision(settings):
        if border == "constant" and all(lo == hi for lo, hi in pads) and _native16((dy, w)):
            return _portable.grad_fn("input", nsp)(
                tuple(input_shape), w, dy, stride=st, padding=tuple(lo for lo, _ in pads),
                dilation=di, groups=groups)
        return _portable.conv_grad_input(dy, w, input_shape, stride=stride, padding=padding,
                                         dilation=dilation, groups=groups, border=border,
                                         cval=cval)


def conv_grad_weight_with(settings, x, dy, weight_shape, *, stride=1, padding=0, dilation=1,
                          groups=1, border="constant", cval=0.0):
    with precision(settings):
        if _native16((x, dy), border, cval):
            nsp = x.ndim - 2
            st = positive_tuple(stride, nsp, "stride")
            di = positive_tuple(dilation, nsp, "dilation")
            xin, torch_padding = _portable.conv_input(x, tuple(x.shape[2:]),
                                                       tuple(weight_shape[2:]), st, padding, di,
                                                       border, cval)
            return _portable.grad_fn("weight", nsp)(xin, tuple(weight_shape), dy, stride=st,
                                                     padding=torch_padding, dilation=di,
                                                     groups=groups)
        return _portable.conv_grad_weight(x, dy, weight_shape, stride=stride, padding=padding,
                                          dilation=dilation, groups=groups, border=border,
                                          cval=cval)


def conv_grad_bias_with(settings, dy):
    import torch

    dims = (0,) + tuple(range(2, dy.ndim))
    acc = torch.float64 if dy.dtype == torch.float64 else torch.float32
    return dy.sum(dim=dims, dtype=acc).to(dy.dtype)   # float32 sums for half dy, one rounding


OPS = ("conv", "conv_relu", "conv_transpose", "conv_grad_input", "conv_grad_weight",
       "conv_grad_bias")


def bound_to(settings) -> tuple:
    """The op functions (in OPS order) of a candidate that runs under ``settings``: each
    variant module binds its own, so the variants share every line of the computation."""
    return tuple(functools.partial(globals()[f"{op}_with"], settings) for op in OPS)


# This module's candidate: benchmark off, TF32 off
(conv, conv_relu, conv_transpose, conv_grad_input, conv_grad_weight,
 conv_grad_bias) = bound_to(SETTINGS)
