"""torch.nn-compatible layers computed by convbench (``import convbench.nn``; loads torch).

    import torch, convbench.nn as cnn
    model = torch.nn.Sequential(cnn.Conv2d(1, 8, 3, padding="same", border="reflect"),
                                torch.nn.ReLU(), cnn.MaxPool2d(2))

Conv1d/2d/3d, ConvTranspose1d/2d/3d, MaxPool/AvgPool/LPPool 1d/2d/3d and BatchNorm1d/2d/3d
take torch.nn's constructor arguments (same names, order and defaults), hold the same
parameters and buffers under the same state_dict keys and initialise them as torch.nn
does, so a torch.nn model's state_dict loads into the convbench one unchanged, and back.
They add keyword-only arguments: ``algorithm`` (a candidate name; None is convbench's
default choice), and on the conv layers ``border``/``cval`` (every border, and 'same'
padding with stride). GaussianBlur filters the spatial axes of (N, C, *spatial).

Every forward runs a torch custom operator of ``convbench.torch_ops``: autograd reaches
convbench's own gradient ops, and ``torch.compile(model, fullgraph=True)`` traces each
layer as one op.
"""
from __future__ import annotations


def ops():
    """convbench.torch_ops, the operators every layer calls (imported on first use)."""
    from convbench import torch_ops

    return torch_ops


def batched(layer, x, run):
    """``run`` on (N, C, *spatial); an unbatched (C, *spatial) input is given N = 1 (as
    torch.nn's layers do). ``layer.spatial`` is the layer's number of spatial axes."""
    n = layer.spatial
    if x.dim() == n + 1:
        return run(x.unsqueeze(0)).squeeze(0)
    if x.dim() != n + 2:
        raise ValueError(f"{type(layer).__name__} expects input of {n + 1} (unbatched) or "
                         f"{n + 2} (N, C, *spatial) dimensions, got shape {tuple(x.shape)}")
    return run(x)


from convbench.nn.batchnorm import BatchNorm1d, BatchNorm2d, BatchNorm3d  # noqa: E402
from convbench.nn.conv import (  # noqa: E402
    Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d)
from convbench.nn.gaussian import GaussianBlur  # noqa: E402
from convbench.nn.pool import (  # noqa: E402
    AvgPool1d, AvgPool2d, AvgPool3d, LPPool1d, LPPool2d, LPPool3d, MaxPool1d, MaxPool2d,
    MaxPool3d)

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
           "ConvTranspose3d", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d",
           "AvgPool3d", "LPPool1d", "LPPool2d", "LPPool3d", "BatchNorm1d", "BatchNorm2d",
           "BatchNorm3d", "GaussianBlur"]
