# conv_torch: torch's convolution layers on CPU (oneDNN / its own GEMM kernels), after
# extending the input by the border.
#
#   x --border--> xp --F.conv{1,2,3}d(w, bias, stride, dilation, groups)--> y
#
#   border:  constant            F.pad(value=cval), or conv's own zero padding when cval = 0
#                                and the padding is the same on both sides
#            edge/reflect/wrap   F.pad 'replicate'/'reflect'/'circular' where torch allows it
#                                (reflect: padding < size; circular: padding <= size)
#            symmetric, wider    an index gather per axis (refimpl.pad.source_index), any width
#   'same' with stride (torch refuses it): the explicit per-side padding of refimpl.geometry.
#   conv_transpose:    F.conv_transpose{1,2,3}d (its own arguments, zero border only).
#   conv_relu:         conv, then torch.relu: the unfused sequence fused kernels are timed against.
#   conv_grad_input:   torch.nn.grad.conv*d_input on the padded shape, then the border's
#                      gradient folded back into x (index_add_ on the border's source indices).
#   conv_grad_weight:  torch.nn.grad.conv*d_weight on the border-extended input.
#   conv_grad_bias:    dy summed over N and space.
#
# Wins: layer shapes with many channels (blocked direct/GEMM kernels, all cores); keeps
#   torch tensors on their device.
# Does not win: 1-channel images with large kernels (no FFT path), tiny problems (call
#   overhead of a few tens of microseconds).
# Applies: every case of these ops (1-3 spatial axes, every border and width, groups, bias).
# Numerics: accumulation in the compute type (float32 for float16 and bfloat16 tensors, which
#   are converted exactly and rounded once at the end; float64 stays float64): the 'direct'
#   bound (bfloat16's final rounding is u = 2^-8 relative).
from __future__ import annotations

import functools

from candidates.torch_support import dtypes, gather_border, to_native  # noqa: F401  (the module's to_native)
from refimpl.geometry import layer_padding, positive_tuple
from refimpl.pad import source_indices

LIBRARY = "torch"
DEVICE = "cpu"
ERROR = "direct"
NONFINITE = True   # every product summed: NaN/Inf land as in the oracle

_OPS = ("conv", "conv_transpose", "conv_grad_input", "conv_grad_weight", "conv_grad_bias",
        "conv_relu")
_TORCH_BORDER = {"edge": "replicate", "reflect": "reflect", "wrap": "circular"}


def supports(spec):
    if spec.op not in _OPS:
        return f"conv_torch does not compute {spec.op}"
    return None


def functional(name, nsp):
    import torch.nn.functional as F

    return getattr(F, f"{name}{nsp}d")


def grad_fn(name, nsp):
    import torch.nn.grad

    return getattr(torch.nn.grad, f"conv{nsp}d_{name}")


def _extend(x, pads, border, cval):
    """x (N, C, *spatial) extended by per-side pads with the border (differentiable)."""
    import torch.nn.functional as F

    if not any(lo or hi for lo, hi in pads):
        return x
    flat = [v for lo_hi in reversed(pads) for v in lo_hi]
    if border == "constant":
        return F.pad(x, flat, mode="constant", value=float(cval))
    sizes = x.shape[2:]
    fits = {"edge": True, "reflect": all(lo < n and hi < n for n, (lo, hi) in zip(sizes, pads)),
            "wrap": all(lo <= n and hi <= n for n, (lo, hi) in zip(sizes, pads)),
            "symmetric": False}[border]
    if fits and len(sizes) <= 3:
        return F.pad(x, flat, mode=_TORCH_BORDER[border])
    for axis, (lo, hi) in enumerate(pads, start=2):
        if lo or hi:
            x = gather_border(x, axis, lo, hi, border)
    return x


@functools.lru_cache(maxsize=1024)
def _geometry(in_spatial, kernel, stride, padding, dilation):
    nsp = len(kernel)
    stride = positive_tuple(stride, nsp, "stride")
    dilation = positive_tuple(dilation, nsp, "dilation")
    return stride, dilation, layer_padding(tuple(in_spatial), tuple(kernel), padding, stride,
                                           dilation)


def geometry(in_spatial, kernel, stride, padding, dilation):
    """(stride, dilation, per-side padding) as tuples, validated; remembered per shapes and
    keywords, since a layer makes the same call every step and resolving them costs as much
    as a small convolution's arithmetic."""
    try:
        return _geometry(in_spatial, kernel, stride, padding, dilation)
    except TypeError:           # an unhashable keyword (a list): resolved afresh
        return _geometry.__wrapped__(in_spatial, kernel, stride, padding, dilation)


def _as(t, dtype):
    return t if t is None or t.dtype is dtype else t.to(dtype)


def conv_input(x, in_spatial, kernel, stride, padding, dilation, border, cval):
    """(input to F.conv, torch padding argument) for our padding and border."""
    return _padded(x, geometry(in_spatial, kernel, stride, padding, dilation)[2], border, cval)


def _padded(x, pads, border, cval):
    symmetric = all(lo == hi for lo, hi in pads)
    if symmetric and (border == "constant" and cval == 0 or not any(lo for lo, _ in pads)):
        return x, tuple(lo for lo, _ in pads)
    return _extend(x, pads, border, cval), 0


def conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, border="constant",
         cval=0.0):
    out, compute = dtypes(x, w, bias)
    stride, dilation, pads = geometry(x.shape[2:], w.shape[2:], stride, padding, dilation)
    xin, torch_padding = _padded(_as(x, compute), pads, border, cval)
    y = functional("conv", len(stride))(xin, _as(w, compute), _as(bias, compute),
                                        stride=stride, padding=torch_padding,
                                        dilation=dilation, groups=groups)
    return _as(y, out)


def conv_transpose(x, w, bias=None, *, stride=1, padding=0, output_padding=0, dilation=1,
                   groups=1):
    out, compute = dtypes(x, w, bias)
    y = functional("conv_transpose", x.ndim - 2)(
        x.to(compute), w.to(compute), None if bias is None else bias.to(compute), stride=stride,
        padding=padding, output_padding=output_padding, groups=groups, dilation=dilation)
    return y.to(out)


def conv_grad_input(dy, w, input_shape, *, stride=1, padding=0, dilation=1, groups=1,
                    border="constant", cval=0.0):
    import torch

    out, compute = dtypes(dy, w)
    nsp = dy.ndim - 2
    in_spatial = tuple(input_shape[2:])
    stride, dilation, pads = geometry(in_spatial, w.shape[2:], stride, padding, dilation)
    grad_input = grad_fn("input", nsp)
    if border == "constant" and all(lo == hi for lo, hi in pads):   # torch's own padding
        return _as(grad_input(tuple(input_shape), _as(w, compute), _as(dy, compute),
                              stride=stride, padding=tuple(lo for lo, _ in pads),
                              dilation=dilation, groups=groups), out)
    padded = tuple(input_shape[:2]) + tuple(n + lo + hi for n, (lo, hi) in zip(in_spatial, pads))
    grad_padded = grad_input(padded, w.to(compute), dy.to(compute), stride=stride, padding=0,
                             dilation=dilation, groups=groups)
    if border == "constant":      # the border read cval: its gradient goes nowhere
        inside = tuple(slice(lo, lo + n) for n, (lo, _) in zip(in_spatial, pads))
        return grad_padded[(slice(None), slice(None)) + inside].to(out)
    # the border's gradient folds back into the samples it was read from: the adjoint of
    # the border's index gather, axis by axis (no autograd: this also runs where autograd
    # is off, inside a torch operator or under inference_mode)
    for axis, (n, (lo, hi)) in enumerate(zip(in_spatial, pads), start=2):
        if lo or hi:
            index = torch.from_numpy(source_indices(range(-lo, n + hi), n, border))
            shape = list(grad_padded.shape)
            shape[axis] = n
            grad_padded = grad_padded.new_zeros(shape).index_add_(
                axis, index.to(grad_padded.device), grad_padded)
    return grad_padded.to(out)


def conv_grad_weight(x, dy, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                     border="constant", cval=0.0):
    out, compute = dtypes(x, dy)
    stride, dilation, pads = geometry(x.shape[2:], tuple(weight_shape[2:]), stride, padding,
                                      dilation)
    xin, torch_padding = _padded(_as(x, compute), pads, border, cval)
    dw = grad_fn("weight", len(stride))(xin, tuple(weight_shape), _as(dy, compute),
                                        stride=stride, padding=torch_padding,
                                        dilation=dilation, groups=groups)
    return _as(dw, out)


def conv_grad_bias(dy):
    out, compute = dtypes(dy)
    dims = (0,) + tuple(range(2, dy.ndim))
    return _as(_as(dy, compute).sum(dim=dims), out)


def conv_relu(x, w, bias=None, **kwargs):
    """The unfused sequence: conv (bias added by the layer), then a separate ReLU pass."""
    import torch

    return torch.relu(conv(x, w, bias, **kwargs))
