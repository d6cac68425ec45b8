# batch_norm_torch: torch's own batch normalisation (aten native_batch_norm and
#   native_batch_norm_backward), the peer as people call it (BatchNorm1d/2d/3d).
#
#   forward   running statistics cloned (the op is pure) -> F.batch_norm(x, rm', rv', w, b,
#             training, momentum, eps) -> (y, rm', rv')
#   gradient  training: native_batch_norm(x, w, None, None, True, 0, eps) for the saved
#             mean and invstd (what autograd keeps from the forward) -> native_batch_norm_
#             backward(dy, x, w, None, None, mean, invstd, True, eps);
#             eval: native_batch_norm_backward with the running statistics
#
# Wins: the reference point: torch's CPU kernels are vectorised and threaded over channels;
#   on a GPU, cuDNN's.
# Does not win: the gradient op alone recomputes the forward's statistics (autograd would
#   have saved them); timings of forward + backward use torch.nn.BatchNorm2d with autograd.
# Applies: float16, bfloat16, float32, float64; 0-3 spatial axes; any layout (channels_last
#   kept). Does not apply: nothing refused. Half floats are computed in float32 (as every
#   torch candidate here: torch_support.dtypes): torch's own float16 CPU kernels round the
#   scale and shift to float16 (errors ~30x the float32-compute bound on the small cases).
# Numerics: statistics accumulated in double for float32 input on CPU (torch's
#   accumulation type), the normalisation as x * (invstd w) + (b - mean invstd w), whose
#   error grows with |mean| / std: the op's 'direct' scale covers it. NaN/Inf: not declared (torch's vectorised reductions do not
#   promise the oracle's placement).
from __future__ import annotations

from candidates.torch_support import dtypes, to_native

LIBRARY = "torch"
DEVICE = "cpu"
ERROR = "direct"

__all__ = ["to_native", "supports", "batch_norm", "batch_norm_grad"]


def supports(spec):
    return None


def batch_norm(x, running_mean, running_var, weight, bias, training=False, momentum=0.1,
               eps=1e-5):
    import torch

    out, compute = dtypes(x)
    with torch.no_grad():
        rm, rv = running_mean.to(compute, copy=True), running_var.to(compute, copy=True)
        y = torch.nn.functional.batch_norm(x.to(compute), rm, rv, weight.to(compute),
                                           bias.to(compute), training, momentum, eps)
    return y.to(out), rm.to(running_mean.dtype), rv.to(running_var.dtype)


def batch_norm_grad(dy, x, running_mean, running_var, weight, training=False, eps=1e-5):
    import torch

    aten = torch.ops.aten
    out, compute = dtypes(x, dy)
    dy, x, w = dy.to(compute), x.to(compute), weight.to(compute)
    running_mean, running_var = running_mean.to(compute), running_var.to(compute)
    with torch.no_grad():
        if training:
            _, mean, invstd = aten.native_batch_norm(x, w, None, None, None, True, 0.0, eps)
            dx, dw, db = aten.native_batch_norm_backward(dy, x, w, None, None, mean, invstd,
                                                         True, eps, [True, True, True])
        else:
            dx, dw, db = aten.native_batch_norm_backward(dy, x, w, running_mean, running_var,
                                                         None, None, False, eps,
                                                         [True, True, True])
    return dx.to(out), dw.to(weight.dtype), db.to(weight.dtype)
