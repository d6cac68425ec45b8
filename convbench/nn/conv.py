"""Conv1d/2d/3d and ConvTranspose1d/2d/3d: torch.nn's constructors, parameters,
state_dict keys and initialisation; forward runs convbench.torch_ops.conv /
conv_transpose (torch custom operators: autograd and torch.compile see one op).

Added to torch's arguments (keyword-only): ``border`` (constant, edge, symmetric, reflect,
wrap and their aliases; what fills the padding), ``cval`` (the constant border's value)
and ``algorithm`` (a candidate name; None is convbench's default choice). ``padding``
also takes per-side pairs ``((lo, hi), ...)`` and ``'same'`` with any stride (output
``ceil(in / stride)``, the odd extra sample on the high side), which torch refuses.
"""
from __future__ import annotations

import math

import torch
from torch.nn import Module, Parameter, init

from convbench.nn import batched, ops
from refimpl.geometry import as_tuple, is_int, positive_tuple
from refimpl.pad import canonical_border

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def border_of(padding_mode: str, border) -> str:
    """The canonical border a conv layer pads with: ``border`` when given (it must agree
    with a non-default ``padding_mode``), else the one ``padding_mode`` names."""
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
    implied = "constant" if padding_mode == "zeros" else canonical_border(padding_mode, "torch")
    if border is None:
        return implied
    chosen = canonical_border(border)
    if padding_mode != "zeros" and chosen != implied:
        raise ValueError(f"padding_mode={padding_mode!r} pads with border={implied!r}, but "
                         f"border={border!r} was given: pass one of them")
    return chosen


def layer_padding_arg(padding, n: int):
    """torch's stored form of ``padding``: 'same'/'valid', a tuple of n ints, or n
    (lo, hi) pairs; ValueError/TypeError naming ``padding`` otherwise."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"padding must be 'same', 'valid', an int, a tuple of {n} ints or "
                             f"{n} (lo, hi) pairs, got {padding!r}")
        return padding
    if not is_int(padding) and hasattr(padding, "__iter__") \
            and any(not is_int(p) for p in padding):
        pairs = tuple(as_tuple(p, 2, "padding (lo, hi) pair") for p in padding)
        if len(pairs) != n:
            raise ValueError(f"padding must have {n} (lo, hi) pairs, got {padding!r}")
        flat = [v for pair in pairs for v in pair]
    else:
        pairs = flat = as_tuple(padding, n, "padding")
    if any(v < 0 for v in flat):
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return pairs


def _transpose_padding(padding, n: int) -> tuple[int, ...]:
    """A transposed layer's padding: ints only (it crops the output; no border)."""
    if isinstance(padding, str):
        raise ValueError(f"padding of a transposed conv must be an int or a tuple of {n} ints, "
                         f"got {padding!r}")
    items = as_tuple(padding, n, "padding")
    if any(v < 0 for v in items):
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return items


class _ConvLayer(Module):
    """What the six conv layers share: arguments, parameters, initialisation, repr."""

    spatial = 0            # spatial axes, set by each layer
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 output_padding, groups, bias, padding_mode, device, dtype, border, cval,
                 algorithm):
        super().__init__()
        n = self.spatial
        name = type(self).__name__
        for arg, value in (("in_channels", in_channels), ("out_channels", out_channels),
                           ("groups", groups)):
            if not is_int(value) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive int, got {value!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels "
                             f"({out_channels}) must be divisible by groups ({groups})")
        if self.transposed and padding_mode != "zeros":
            raise ValueError(f"{name} pads only with zeros (padding_mode='zeros'), got "
                             f"padding_mode={padding_mode!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = positive_tuple(kernel_size, n, "kernel_size")
        self.stride = positive_tuple(stride, n, "stride")
        self.padding = _transpose_padding(padding, n) if self.transposed \
            else layer_padding_arg(padding, n)
        self.dilation = positive_tuple(dilation, n, "dilation")
        self.output_padding = as_tuple(output_padding, n, "output_padding")
        if any(p < 0 for p in self.output_padding):
            raise ValueError(f"{name}: output_padding must be >= 0, got {output_padding!r}")
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self.border = "constant" if self.transposed else border_of(padding_mode, border)
        self.cval = float(cval)
        self.algorithm = algorithm
        channels = (in_channels, out_channels // groups) if self.transposed \
            else (out_channels, in_channels // groups)
        factory = {"device": device, "dtype": dtype}
        self.weight = Parameter(torch.empty(*channels, *self.kernel_size, **factory))
        if bias:
            self.bias = Parameter(torch.empty(out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn's initialisation: weight ~ kaiming_uniform_(a=sqrt(5)), i.e.
        U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the bias from the same interval, with
        fan_in = weight.shape[1] * prod(kernel_size) (transposed layers too, as torch)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            if fan_in:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        n = self.spatial
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, " \
            f"stride={self.stride}"
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        if self.border != border_of(self.padding_mode, None):
            s += f", border={self.border}"
        if self.border == "constant" and self.cval != 0:
            s += f", cval={self.cval}"
        if self.algorithm is not None:
            s += f", algorithm={self.algorithm!r}"
        return s

    def _batched(self, x, run):
        return batched(self, x, run)


class _Conv(_ConvLayer):
    def forward(self, input):
        return self._batched(input, lambda x: ops().conv(
            x, self.weight, self.bias, stride=self.stride, padding=self.padding,
            dilation=self.dilation, groups=self.groups, border=self.border, cval=self.cval,
            algorithm=self.algorithm))


class Conv1d(_Conv):
    """torch.nn.Conv1d on convbench's conv, plus ``border``, ``cval``, ``algorithm``."""

    spatial = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device=None,
                 dtype=None, *, border=None, cval=0.0, algorithm=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, 0,
                         groups, bias, padding_mode, device, dtype, border, cval, algorithm)


class Conv2d(_Conv):
    """torch.nn.Conv2d on convbench's conv, plus ``border``, ``cval``, ``algorithm``."""

    spatial = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device=None,
                 dtype=None, *, border=None, cval=0.0, algorithm=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, 0,
                         groups, bias, padding_mode, device, dtype, border, cval, algorithm)


class Conv3d(_Conv):
    """torch.nn.Conv3d on convbench's conv, plus ``border``, ``cval``, ``algorithm``."""

    spatial = 3

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device=None,
                 dtype=None, *, border=None, cval=0.0, algorithm=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, 0,
                         groups, bias, padding_mode, device, dtype, border, cval, algorithm)


class _ConvTranspose(_ConvLayer):
    transposed = True

    def output_padding_for(self, input, output_size) -> tuple[int, ...]:
        """The output_padding that gives ``output_size`` (its spatial sizes, or all
        N + 2 / C + 1 sizes), which must lie in [smallest, smallest + stride - 1] per axis;
        the layer's own output_padding when None (torch's rule)."""
        if output_size is None:
            return self.output_padding
        n, size = self.spatial, [int(v) for v in output_size]
        if len(size) == input.dim():             # N, C (or C) given too
            size = size[-n:]
        if len(size) != n:
            raise ValueError(f"{type(self).__name__}: output_size must have {n} spatial sizes "
                             f"(or {input.dim()} in all), got {list(output_size)}")
        smallest = [(int(i) - 1) * s - 2 * p + d * (k - 1) + 1 for i, s, p, d, k in zip(
            input.shape[-n:], self.stride, self.padding, self.dilation, self.kernel_size)]
        largest = [m + s - 1 for m, s in zip(smallest, self.stride)]
        if any(not low <= want <= high for want, low, high in zip(size, smallest, largest)):
            raise ValueError(f"output_size {size} is out of range: valid sizes run from "
                             f"{smallest} to {largest} for an input of "
                             f"{tuple(input.shape[-n:])}")
        return tuple(w - m for w, m in zip(size, smallest))

    def forward(self, input, output_size=None):
        output_padding = self.output_padding_for(input, output_size)
        return self._batched(input, lambda x: ops().conv_transpose(
            x, self.weight, self.bias, stride=self.stride, padding=self.padding,
            output_padding=output_padding, dilation=self.dilation, groups=self.groups,
            algorithm=self.algorithm))


class ConvTranspose1d(_ConvTranspose):
    """torch.nn.ConvTranspose1d on convbench's conv_transpose, plus ``algorithm``."""

    spatial = 1

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None, *, algorithm=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         output_padding, groups, bias, padding_mode, device, dtype, None, 0.0,
                         algorithm)


class ConvTranspose2d(_ConvTranspose):
    """torch.nn.ConvTranspose2d on convbench's conv_transpose, plus ``algorithm``."""

    spatial = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None, *, algorithm=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         output_padding, groups, bias, padding_mode, device, dtype, None, 0.0,
                         algorithm)


class ConvTranspose3d(_ConvTranspose):
    """torch.nn.ConvTranspose3d on convbench's conv_transpose, plus ``algorithm``."""

    spatial = 3

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None, *, algorithm=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         output_padding, groups, bias, padding_mode, device, dtype, None, 0.0,
                         algorithm)
