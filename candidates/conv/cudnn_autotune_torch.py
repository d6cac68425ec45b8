# cudnn_autotune_torch: cuDNN through torch with torch.backends.cudnn.benchmark on: the first
# call of each shape times cuDNN's algorithms (implicit GEMM, Winograd, FFT, ...) and keeps
# the fastest for the following calls. TF32 off. The code is cudnn_torch's (see its header);
# only the settings differ, set and restored around each call.
#
# Wins: repeated calls on one shape (training, benchmarks): the autotuned algorithm is often
#   faster than the heuristic pick, most on large filters and unusual shapes.
# Does not win: a shape seen once (its first call pays for timing every algorithm, easily
#   100x one call), memory-tight runs (the search allocates workspaces).
# Applies: conv, conv_relu, conv_transpose, conv_grad_input, conv_grad_weight on CUDA
#   tensors; not on a machine without a GPU.
# Numerics: as cudnn_torch ('direct' for float32 with TF32 off and float64). The autotuner
#   may pick Winograd or FFT algorithms, whose error is normwise: a case where that exceeds
#   the elementwise bound is reported FAIL with its error, not timed.
from __future__ import annotations

from candidates.conv import cudnn_torch as _base

LIBRARY = "torch"
DEVICE = "gpu"
ERROR = "direct"
SETTINGS = _base.Settings(benchmark=True, tf32=False)

supports = _base.supports
to_native = _base.to_native


(conv, conv_relu, conv_transpose, conv_grad_input, conv_grad_weight,
 conv_grad_bias) = _base.bound_to(SETTINGS)
