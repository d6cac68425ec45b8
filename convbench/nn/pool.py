"""MaxPool1d/2d/3d, AvgPool1d/2d/3d, LPPool1d/2d/3d: torch.nn's constructors, attributes
and repr; forward runs convbench.torch_ops.max_pool / avg_pool / lp_pool (torch custom
operators). Added keyword: ``algorithm`` (a candidate name; None is the default choice).
``return_indices=True`` is refused: convbench's max_pool returns the values only.
"""
from __future__ import annotations

from torch.nn import Module

from convbench.nn import batched, ops


class _Pool(Module):
    spatial = 0

    def _batched(self, x, run):
        return batched(self, x, run)

    def _algorithm_repr(self) -> str:
        return "" if self.algorithm is None else f", algorithm={self.algorithm!r}"


class _MaxPool(_Pool):
    def __init__(self, kernel_size, stride, padding, dilation, return_indices, ceil_mode,
                 algorithm):
        super().__init__()
        if return_indices:
            name = type(self).__name__
            raise ValueError(f"{name}(return_indices=True) is not supported: convbench's "
                             f"max_pool returns the pooled values only (use torch.nn.{name} "
                             "where the indices are needed, e.g. for MaxUnpool)")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode
        self.algorithm = algorithm

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
                + self._algorithm_repr())

    def forward(self, input):
        return self._batched(input, lambda x: ops().max_pool(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
            algorithm=self.algorithm))


class MaxPool1d(_MaxPool):
    """torch.nn.MaxPool1d on convbench's max_pool (ties keep the first maximum)."""

    spatial = 1

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False, *, algorithm=None):
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode,
                         algorithm)


class MaxPool2d(_MaxPool):
    """torch.nn.MaxPool2d on convbench's max_pool (ties keep the first maximum)."""

    spatial = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False, *, algorithm=None):
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode,
                         algorithm)


class MaxPool3d(_MaxPool):
    """torch.nn.MaxPool3d on convbench's max_pool (ties keep the first maximum)."""

    spatial = 3

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False, *, algorithm=None):
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode,
                         algorithm)


class _AvgPool(_Pool):
    def __init__(self, kernel_size, stride, padding, ceil_mode, count_include_pad,
                 divisor_override, algorithm):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override
        self.algorithm = algorithm

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                + self._algorithm_repr())

    def forward(self, input):
        return self._batched(input, lambda x: ops().avg_pool(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, self.divisor_override, algorithm=self.algorithm))


class AvgPool1d(_AvgPool):
    """torch.nn.AvgPool1d on convbench's avg_pool (no divisor_override, as torch)."""

    spatial = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, *, algorithm=None):
        # torch keeps the 1-D layer's sizes as 1-tuples
        one = lambda v: (v,) if isinstance(v, int) else tuple(v)  # noqa: E731
        super().__init__(one(kernel_size), one(stride if stride is not None else kernel_size),
                         one(padding), ceil_mode, count_include_pad, None, algorithm)


class AvgPool2d(_AvgPool):
    """torch.nn.AvgPool2d on convbench's avg_pool."""

    spatial = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None, *, algorithm=None):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad,
                         divisor_override, algorithm)


class AvgPool3d(_AvgPool):
    """torch.nn.AvgPool3d on convbench's avg_pool."""

    spatial = 3

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None, *, algorithm=None):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad,
                         divisor_override, algorithm)


class _LPPool(_Pool):
    def __init__(self, norm_type, kernel_size, stride, ceil_mode, algorithm):
        super().__init__()
        self.norm_type = norm_type
        self.kernel_size = kernel_size
        self.stride = stride            # None stays None (torch's repr shows it)
        self.ceil_mode = ceil_mode
        self.algorithm = algorithm

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}" + self._algorithm_repr())

    def forward(self, input):
        return self._batched(input, lambda x: ops().lp_pool(
            x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode,
            algorithm=self.algorithm))


class LPPool1d(_LPPool):
    """torch.nn.LPPool1d on convbench's lp_pool: (sum over the window of x**p) ** (1/p)."""

    spatial = 1

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False, *, algorithm=None):
        super().__init__(norm_type, kernel_size, stride, ceil_mode, algorithm)


class LPPool2d(_LPPool):
    """torch.nn.LPPool2d on convbench's lp_pool: (sum over the window of x**p) ** (1/p)."""

    spatial = 2

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False, *, algorithm=None):
        super().__init__(norm_type, kernel_size, stride, ceil_mode, algorithm)


class LPPool3d(_LPPool):
    """torch.nn.LPPool3d on convbench's lp_pool: (sum over the window of x**p) ** (1/p)."""

    spatial = 3

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False, *, algorithm=None):
        super().__init__(norm_type, kernel_size, stride, ceil_mode, algorithm)
