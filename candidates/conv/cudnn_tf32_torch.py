# cudnn_tf32_torch: cuDNN through torch with TF32 allowed -- torch's own default for
# convolutions (torch.backends.cudnn.conv.fp32_precision == "tf32", formerly
# cudnn.allow_tf32 = True) -- and benchmark off, also the default. float32 convolutions run
# on tensor cores with inputs rounded to 10 significand bits. The code is cudnn_torch's
# (see its header); only the settings differ, set and restored around each call.
#
# Wins: float32 layers on Ampere and later GPUs: tensor-core throughput (several times the
#   FMA rate) for float32 tensors, with no change to the caller's code.
# Does not win: float16 (tensor cores already), float64 (TF32 never applies), pre-Ampere GPUs
#   (no TF32: the same kernels as cudnn_torch).
# Applies: conv, conv_relu, conv_transpose, conv_grad_input, conv_grad_weight on CUDA
#   tensors; not on a machine without a GPU.
# Numerics: its own precision class, 'tf32' (convbench/tolerance.py), for float32 results:
#   each product carries up to ~2**-9 relative error from the input conversions (2**-10
#   each, chopping allowed), 2**15 times float32's unit roundoff. Checked under 'direct'
#   (the float32 bound, K 2**-24 relative to the scale) it FAILS, and the report gives
#   the measured error: that is the point of this variant (users were bitten by TF32
#   silently changing results). Caveat of a worst-case bound: it grows like K**2 against
#   TF32's typical error ~sqrt(K), so with reductions of a few thousand terms (V8: 4608)
#   TF32 can fit under it. float16 values convert to TF32 exactly and float64 never uses
#   it: 'direct' there.
from __future__ import annotations

import numpy as np

from candidates.conv import cudnn_torch as _base

LIBRARY = "torch"
DEVICE = "gpu"
SETTINGS = _base.Settings(benchmark=False, tf32=True)

supports = _base.supports
to_native = _base.to_native


def ERROR(spec):
    """'tf32' where TF32 can change the result (a float32 result), else 'direct'."""
    if spec.op != "conv_grad_bias" and np.result_type(*spec.dtypes) == np.float32:
        return "tf32"
    return "direct"


(conv, conv_relu, conv_transpose, conv_grad_input, conv_grad_weight,
 conv_grad_bias) = _base.bound_to(SETTINGS)
