"""BatchNorm1d/2d/3d: torch.nn's constructors, parameters (weight, bias), buffers
(running_mean, running_var, num_batches_tracked) and state_dict keys; forward runs
convbench.torch_ops.batch_norm (a torch custom operator).

Training mode normalises by the batch statistics (biased variance) and, when the layer
tracks running statistics, updates them in place (unbiased variance) with ``momentum``,
or with the cumulative average 1 / num_batches_tracked when ``momentum`` is None; eval
mode normalises by the running statistics (by the batch's when none are tracked). Added
keyword: ``algorithm`` (a candidate name; None is the default choice).
"""
from __future__ import annotations

import torch
from torch.nn import Module, Parameter, init

from convbench.nn import ops


class _BatchNorm(Module):
    # 2: state dicts carry num_batches_tracked (older ones get 0 on load, as torch does)
    _version = 2
    dims = ()              # accepted input ranks

    def __init__(self, num_features, eps, momentum, affine, track_running_stats, device,
                 dtype, bias, algorithm):
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.algorithm = algorithm
        if affine:
            self.weight = Parameter(torch.empty(num_features, **factory))
            if bias:
                self.bias = Parameter(torch.empty(num_features, **factory))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **factory))
            self.register_buffer("running_var", torch.ones(num_features, **factory))
            self.register_buffer("num_batches_tracked",
                                 torch.tensor(0, dtype=torch.long, device=device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}"
                + ("" if self.algorithm is None else f", algorithm={self.algorithm!r}"))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        version = local_metadata.get("version")
        key = prefix + "num_batches_tracked"
        if (version is None or version < 2) and self.track_running_stats \
                and key not in state_dict:
            state_dict[key] = torch.tensor(0, dtype=torch.long)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def forward(self, input):
        if input.dim() not in self.dims:
            ranks = " or ".join(f"{d}D" for d in self.dims)
            raise ValueError(f"{type(self).__name__} expects {ranks} input (N, C, ...), got "
                             f"{input.dim()}D input")
        factor = 0.0 if self.momentum is None else self.momentum
        tracking = self.training and self.track_running_stats
        if tracking and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:            # cumulative average of the batches seen
                factor = 1.0 / float(self.num_batches_tracked)
        # batch statistics in training, and in eval when no running ones are kept
        use_batch = self.training or self.running_mean is None
        keep = not self.training or self.track_running_stats
        return ops().batch_norm(input, self.running_mean if keep else None,
                                self.running_var if keep else None, self.weight, self.bias,
                                use_batch, factor, self.eps, algorithm=self.algorithm)


class BatchNorm1d(_BatchNorm):
    """torch.nn.BatchNorm1d on convbench's batch_norm: input (N, C) or (N, C, L)."""

    dims = (2, 3)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True,
                 algorithm=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype, bias, algorithm)


class BatchNorm2d(_BatchNorm):
    """torch.nn.BatchNorm2d on convbench's batch_norm: input (N, C, H, W)."""

    dims = (4,)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True,
                 algorithm=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype, bias, algorithm)


class BatchNorm3d(_BatchNorm):
    """torch.nn.BatchNorm3d on convbench's batch_norm: input (N, C, D, H, W)."""

    dims = (5,)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True,
                 algorithm=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype, bias, algorithm)
