"""What the torch candidates of every family share: tensors from numpy arrays, the
dtypes a call computes in, border extension by gathering."""
from __future__ import annotations

import numpy as np

from refimpl.dtypes import HALF_FLOATS
from refimpl.pad import source_indices


def to_native(a):
    """A CPU tensor sharing ``a``'s memory (copied only for negative strides: torch has none)."""
    import torch

    try:
        return torch.from_numpy(a)
    except ValueError:          # a negative stride
        return torch.from_numpy(np.ascontiguousarray(a))


def to_cuda(a):
    """A CUDA tensor of ``a`` (the copy is outside the timed region; convbench.gpu times it)."""
    return to_native(a).cuda()


def dtypes(*tensors):
    """(result dtype, compute dtype) of the tensors (None left out): torch's promotion, and
    refimpl.dtypes.compute_dtype's rule (the half floats computed in float32)."""
    import torch

    present = [t for t in tensors if t is not None]
    out = present[0].dtype
    for t in present[1:]:
        out = torch.promote_types(out, t.dtype)
    return out, (torch.float32 if str(out)[len("torch."):] in HALF_FLOATS else out)


def gather_border(t, axis: int, lo: int, hi: int, border: str):
    """``t`` extended on ``axis`` by ``lo`` and ``hi`` samples under a border other than
    'constant', by gathering the border's source indices (differentiable)."""
    import torch

    index = source_indices(range(-lo, t.shape[axis] + hi), t.shape[axis], border)
    return t.index_select(axis, torch.from_numpy(index).to(t.device))
