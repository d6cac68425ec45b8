# cudnn_torch: torch's pooling on CUDA tensors (max/avg/lp pooling and their gradients).
#
#   x (CUDA) --F.max_pool / F.avg_pool / F.lp_pool (and the aten backward kernels)--> y (CUDA)
#
# Algorithm: pool_torch's calls (see its header) on CUDA tensors. The name follows the conv
#   family's GPU candidate; torch runs pooling with its own ATen CUDA kernels (one thread per
#   output element, or per input element for the gradients, atomics where windows overlap),
#   not cuDNN's pooling routines.
# Wins: big activations on a GPU (memory-bound: about one read of x and one write of y).
# Does not win: tiny inputs (launch overhead of ~10 us per call dominates).
# Applies: every case pool_torch takes (supports() is pool_torch's: the torch behaviours it
#   refuses are the same on CUDA); not on a machine without a GPU.
# Numerics: max is exact; sums in float32 for float16 inputs (converted first, rounded once
#   at the end), float32/float64 otherwise: the 'direct' bound (pool_torch's ERROR). NaN and
#   ties: the CUDA kernels use the same rule as the CPU ones (x > max or isnan(x), scanning
#   the window in order). Overlapping windows' gradients are summed with atomics (any order:
#   still the 'direct' bound).
from __future__ import annotations

from candidates.pool import pool_torch as _portable
from candidates.torch_support import to_cuda as to_native  # noqa: F401  (the module's to_native)

LIBRARY = "torch"
DEVICE = "gpu"
ERROR = _portable.ERROR
supports = _portable.supports
NONFINITE = _portable.NONFINITE


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _portable.max_pool(x, kernel_size, stride, padding, dilation, ceil_mode)


def max_pool_grad(dy, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return _portable.max_pool_grad(dy, x, kernel_size, stride, padding, dilation, ceil_mode)


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None):
    return _portable.avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                              divisor_override)


def avg_pool_grad(dy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                  count_include_pad=True, divisor_override=None):
    return _portable.avg_pool_grad(dy, input_shape, kernel_size, stride, padding, ceil_mode,
                                   count_include_pad, divisor_override)


def lp_pool(x, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _portable.lp_pool(x, norm_type, kernel_size, stride, ceil_mode)


def lp_pool_grad(dy, x, norm_type, kernel_size, stride=None, ceil_mode=False):
    return _portable.lp_pool_grad(dy, x, norm_type, kernel_size, stride, ceil_mode)
