# pool_torch: torch.nn.functional's max/avg/lp pooling (ATen's CPU kernels, OpenMP over
# N*C planes; CUDA kernels when the tensors are on a GPU), and their backward kernels.
#
#   max_pool       F.max_pool{1,2,3}d
#   avg_pool       F.avg_pool{1,2,3}d; 1-D with divisor_override goes through avg_pool2d
#                  on an (N, C, 1, L) view (avg_pool1d has no divisor_override)
#   lp_pool        F.lp_pool{1,2,3}d  (= avg_pool(x**p) * A, then ** (1/p); max_pool(|x|)
#                  for p = +-inf)
#   max_pool_grad  aten max_pool{2,3}d_with_indices, then its _backward (what autograd
#                  runs); 1-D as 2-D on an (N, C, 1, L) view
#   avg_pool_grad  aten avg_pool{2,3}d_backward straight from dy (no forward pass);
#                  1-D as 2-D
#   lp_pool_grad   the closed form of refimpl.pool's oracle in torch ops: avg_pool of x**p,
#                  the pointwise factor, avg_pool{2,3}d_backward, times p x**(p-1) (max_pool
#                  _grad of +-|x| for p = +-inf); no autograd, which is off inside a torch
#                  custom operator and under torch.inference_mode
#
# Wins: big activations (fused, multi-threaded kernels); keeps tensors on their device.
# Does not win: tiny inputs (per-call overhead of a few microseconds).
# Does not apply (supports() says why; torch would give another answer than the oracle):
#   - max_pool_grad when a window sees only padding (dilation jumping over the input):
#     torch's index then points past the window and its backward writes the gradient
#     into an unrelated element; the oracle sends none;
#   - avg_pool / avg_pool_grad in 3-D with an input axis shorter than the kernel: torch's
#     avg_pool3d refuses it even where the padding makes the window fit.
# Numerics: max is exact; sums in the compute type, float16 and bfloat16 computed in float32
#   and rounded once (torch's Half/BFloat16 kernels would round partial results: outside
#   the 'direct' bound).
#   NaN and ties: torch's CPU rule (first maximum in scan order, the last NaN), which is
#   what refimpl.pool writes out.
from __future__ import annotations

import math

from candidates.pool.strided_numpy import ERROR  # noqa: F401  (same precision classes)
from candidates.torch_support import dtypes, to_native  # noqa: F401  (the module's to_native)
from refimpl.geometry import as_tuple, pool_output_shape

LIBRARY = "torch"
DEVICE = "cpu"


def _padding_only_window(shape, kw) -> bool:
    """Does some max_pool window read padding only (every position outside the input)?"""
    spatial = shape[2:]
    n = len(spatial)
    kernel = as_tuple(kw["kernel_size"], n, "kernel_size")
    stride = kernel if kw.get("stride") is None else as_tuple(kw["stride"], n, "stride")
    padding = as_tuple(kw.get("padding", 0), n, "padding")
    dilation = as_tuple(kw.get("dilation", 1), n, "dilation")
    out = pool_output_shape(spatial, kernel, stride, padding, dilation, kw.get("ceil_mode", False))
    for size, k, s, p, d, o in zip(spatial, kernel, stride, padding, dilation, out):
        for oa in range(o):
            if not any(0 <= oa * s - p + j * d < size for j in range(k)):
                return True   # one axis empty makes the whole window padding
    return False


NONFINITE = True   # NaN/Inf in a window: the oracle's max, mean or p-norm of it

def supports(spec):
    kw = spec.kwargs
    if spec.op == "max_pool_grad" and _padding_only_window(spec.shapes[-1], kw):
        return ("a window sees only padding: torch's index points past it and its backward "
                "writes the gradient into an unrelated element (the oracle sends none)")
    if spec.op in ("avg_pool", "avg_pool_grad"):
        shape = tuple(kw["input_shape"]) if spec.op == "avg_pool_grad" else spec.shapes[0]
        kernel = as_tuple(kw["kernel_size"], len(shape) - 2, "kernel_size")
        if len(shape) == 5 and any(n < k for n, k in zip(shape[2:], kernel)):
            return ("torch's avg_pool3d refuses an input axis shorter than the kernel, even "
                    "where the padding makes the window fit")
    return None


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

def _lists(nsp, kernel_size, stride, padding=0, dilation=1):
    kernel = list(as_tuple(kernel_size, nsp, "kernel_size"))
    stride = kernel if stride is None else list(as_tuple(stride, nsp, "stride"))
    padding = list(as_tuple(padding, nsp, "padding"))
    return kernel, stride, padding, list(as_tuple(dilation, nsp, "dilation"))


def _as_2d(lists, values):
    """1-D parameters as 2-D ones on an (N, C, 1, L) view: (1, v) per list."""
    return [[value] + lst for lst, value in zip(lists, values)]


# ---------------------------------------------------------------------------------------
# max_pool
# ---------------------------------------------------------------------------------------

def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    import torch.nn.functional as F

    out, compute = dtypes(x)
    fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[x.ndim - 3]
    k, s, p, d = _lists(x.ndim - 2, kernel_size, stride, padding, dilation)
    return fn(x.to(compute), k, s, p, d, ceil_mode=ceil_mode).to(out)


def max_pool_grad(dy, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    import torch

    out, compute = dtypes(dy, x)
    k, s, p, d = _lists(x.ndim - 2, kernel_size, stride, padding, dilation)
    xc, dyc = x.to(compute), dy.to(compute)
    if x.ndim == 3:
        xc, dyc = xc[:, :, None], dyc[:, :, None]
        k, s, p, d = _as_2d((k, s, p, d), (1, 1, 0, 1))
    aten = torch.ops.aten
    forward, backward = ((aten.max_pool2d_with_indices, aten.max_pool2d_with_indices_backward)
                         if xc.ndim == 4 else
                         (aten.max_pool3d_with_indices, aten.max_pool3d_with_indices_backward))
    _, indices = forward(xc, k, s, p, d, ceil_mode)
    dx = backward(dyc.contiguous(), xc, k, s, p, d, ceil_mode, indices)
    return (dx[:, :, 0] if x.ndim == 3 else dx).to(out)


# ---------------------------------------------------------------------------------------
# avg_pool
# ---------------------------------------------------------------------------------------

def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None):
    import torch.nn.functional as F

    out, compute = dtypes(x)
    k, s, p, _ = _lists(x.ndim - 2, kernel_size, stride, padding)
    xc = x.to(compute)
    if x.ndim == 3:
        if divisor_override is None:
            return F.avg_pool1d(xc, k, s, p, ceil_mode, count_include_pad).to(out)
        k, s, p = _as_2d((k, s, p), (1, 1, 0))
        y = F.avg_pool2d(xc[:, :, None], k, s, p, ceil_mode, count_include_pad, divisor_override)
        return y[:, :, 0].to(out)
    fn = F.avg_pool2d if x.ndim == 4 else F.avg_pool3d
    return fn(xc, k, s, p, ceil_mode, count_include_pad, divisor_override).to(out)


def avg_pool_grad(dy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                  count_include_pad=True, divisor_override=None):
    import torch

    out, compute = dtypes(dy)
    input_shape = tuple(input_shape)
    k, s, p, _ = _lists(len(input_shape) - 2, kernel_size, stride, padding)
    dyc = dy.to(compute)
    if len(input_shape) == 3:
        dyc, input_shape = dyc[:, :, None], input_shape[:2] + (1,) + input_shape[2:]
        k, s, p = _as_2d((k, s, p), (1, 1, 0))
    # the backward kernel reads only the input's shape (and layout), never its values
    shape_only = dyc.new_empty(input_shape)
    backward = (torch.ops.aten.avg_pool2d_backward if len(input_shape) == 4
                else torch.ops.aten.avg_pool3d_backward)
    dx = backward(dyc.contiguous(), shape_only, k, s, p, ceil_mode, count_include_pad,
                  divisor_override)
    return (dx[:, :, 0] if dy.ndim == 3 else dx).to(out)


# ---------------------------------------------------------------------------------------
# lp_pool
# ---------------------------------------------------------------------------------------

def _lp(x, norm_type, kernel_size, stride, ceil_mode):
    import torch.nn.functional as F

    k, s, _, _ = _lists(x.ndim - 2, kernel_size, stride)
    if x.ndim == 3:   # lp_pool1d multiplies by kernel_size itself: it must be an int
        return F.lp_pool1d(x, norm_type, k[0], s[0], ceil_mode)
    fn = F.lp_pool2d if x.ndim == 4 else F.lp_pool3d
    return fn(x, norm_type, k, s, ceil_mode)


def lp_pool(x, norm_type, kernel_size, stride=None, ceil_mode=False):
    out, compute = dtypes(x)
    return _lp(x.to(compute), norm_type, kernel_size, stride, ceil_mode).to(out)


def lp_pool_grad(dy, x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """refimpl.pool.lp_pool_grad's closed form in torch ops (no autograd, which is off
    inside a torch custom operator and under torch.inference_mode). With v = A * avg_pool(
    x**p) (A the window's area; y = v ** (1/p)): g = dy / p * v ** (1/p - 1) * sgn(v)**2,
    0 where v == 0 (the relu of torch's lp_pool), dx = p * x ** (p - 1) * avg_pool_grad(A * g);
    p = +-inf: max_pool_grad(dy, +-|x|) * sgn(x). torch.sign is 0 at 0 and at NaN."""
    import torch

    out, compute = dtypes(dy, x)
    xc, dyc = x.to(compute), dy.to(compute)
    p = float(norm_type)
    if p in (float("inf"), float("-inf")):
        sign = 1.0 if p > 0 else -1.0
        dx = max_pool_grad(dyc, sign * xc.abs(), kernel_size, stride, 0, 1, ceil_mode)
        return (dx * torch.sign(xc)).to(out)
    area = math.prod(as_tuple(kernel_size, x.ndim - 2, "kernel_size"))
    v = avg_pool(xc.pow(p), kernel_size, stride, 0, ceil_mode) * area
    s = torch.sign(v)
    g = dyc * (1.0 / p) * v.pow(1.0 / p - 1.0) * s * s
    g = torch.where(v == 0, torch.zeros((), dtype=compute, device=g.device), g)
    window_sum = avg_pool_grad(g * area, tuple(x.shape), kernel_size, stride, 0, ceil_mode)
    return (window_sum * p * xc.pow(p - 1.0)).to(out)
