"""convbench's ops as torch operators with autograd (``torch.library.custom_op``).

    from convbench import torch_ops
    y = torch_ops.conv(x, w, b, stride=2, padding="same", border="reflect")
    y.sum().backward()          # x.grad, w.grad, b.grad: convbench's own gradient ops

Every op is an operator ``convbench::<op>``. Its implementation runs convbench's own path
(``plans.cached`` on the detached tensors: the default choice, or ``algorithm=``); its fake
implementation gives the output's shape and dtype from the op's record without reading a
value (what ``torch.compile`` and meta tensors see); its backward calls convbench's gradient
ops through the default choice, each an operator here as well:

    op                backward
    correlate         x: conv_grad_input, w: conv_grad_weight, on the image as a (1, 1, ...)
                      layer with the image form's per-side padding (refimpl.geometry)
    convolve          the same with the reversed kernel (and convolve's own anchor)
    gaussian          x: gaussian of dy (constant border: the kernel is symmetric), else
                      conv_grad_input of the sampled kernel (the border folds back)
    conv              conv_grad_input, conv_grad_weight, conv_grad_bias
    conv_grad_input   dy: conv with cval 0; w: conv_grad_weight with cval 0
    conv_grad_weight  dy: conv (cval included: the affine part); x: conv_grad_input
    conv_grad_bias    dy: the gradient spread over N and space
    conv_transpose    x: conv; w: conv_grad_weight (dy and x swapped); bias: conv_grad_bias
    max/avg/lp_pool   max_pool_grad, avg_pool_grad, lp_pool_grad
    avg_pool_grad     dy: avg_pool (so avg_pool is twice differentiable)

so conv (and correlate, convolve, conv_transpose through it) has double backward. The
gradient of max_pool_grad and lp_pool_grad is not provided: backward through them raises
torch's "no autograd formula" error, never a silent zero.

The functions below have the public signatures of convbench/api.py (``torch_ops.conv(x, w,
bias=None, *, stride=1, ...)``) and always go through the operator; the public functions come
here for tensors that require grad with grad mode on (``apply``, reached through
``plans._route``). The Python before an operator call only turns the keywords into the
schema's types (per-side padding resolved from the input's shape, so 'same' with stride
works; canonical border names; per-axis tuples), simple enough for
``torch.compile(fullgraph=True)`` to trace. Where no gradient exists a call with tensors
requiring grad raises ValueError before any work: an integer ``out_dtype``, complex tensors,
image-form gradients over more than 3 axes (gaussian: with a border other than constant).

Outputs are new contiguous tensors on the input's device, in the dtype the op's record
gives; gradients come back in each input's own dtype.
"""
from __future__ import annotations

import functools
import math
import numbers
from typing import Optional

import torch

from convbench import plans
from convbench.ops import get_op, normalize_out_dtype
from refimpl.gaussian import gaussian_kernel, kernel_radius
from refimpl.geometry import as_tuple, image_padding, layer_padding
from refimpl.pad import canonical_border

Tensor = torch.Tensor

_X, _XW, _XWB = ("x",), ("x", "w"), ("x", "w", "bias")
_DIRECT = "normwise"      # the layer ops hold every candidate to its own model (convbench.api)


# ---------------------------------------------------------------------------------------
# Running an op, and its fake
# ---------------------------------------------------------------------------------------

def _run(op: str, tensors: tuple, names: tuple, params: tuple, algorithm, accuracy) -> Tensor:
    """convbench's own call on the detached tensors, as a new contiguous tensor (an
    operator's output may not share an input's memory)."""
    detached = tuple(None if t is None else t.detach() for t in tensors)
    out = plans.cached(op, detached, names, params, algorithm, accuracy)
    if not out.is_contiguous():
        return out.contiguous()
    ptr = out.untyped_storage().data_ptr()
    if any(t is not None and t.untyped_storage().data_ptr() == ptr for t in detached):
        return out.clone()
    return out


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype)[len("torch."):]


def _fake(op: str, tensors: tuple, kwargs: dict) -> Tensor:
    """An empty tensor of the output's shape and dtype, from the op's record (shapes,
    dtypes and keywords only: no value is read)."""
    from convbench.spec import Spec

    present = [t for t in tensors if t is not None]
    spec = Spec.make(op, [tuple(t.shape) for t in present],
                     [_dtype_name(t.dtype) for t in present], **kwargs)
    try:
        dtype = getattr(torch, spec.operation.result_dtype(spec).name)
    except TypeError:           # bfloat16 (numpy has none): torch's promotion
        dtype = present[0].dtype
        for t in present[1:]:
            dtype = torch.promote_types(dtype, t.dtype)
    return present[0].new_empty(spec.output_shape(), dtype=dtype)


def _pairs(flat) -> tuple:
    """Per-side padding from the schema's flat list (lo0, hi0, lo1, hi1, ...)."""
    return tuple((int(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2))


def _flat(pairs) -> list[int]:
    return [int(v) for pair in pairs for v in pair]


def _cast(t, like):
    if t is None or like is None:
        return None
    return t if t.dtype is like.dtype else t.to(like.dtype)


# ---------------------------------------------------------------------------------------
# Checks and keyword normalisation (before any operator call)
# ---------------------------------------------------------------------------------------

def _needs_grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _check_tensors(op: str, tensors, names) -> None:
    for t, name in zip(tensors, names):
        if t is not None and not isinstance(t, torch.Tensor):
            raise TypeError(f"torch_ops.{op}() takes torch tensors; {name} is "
                            f"{type(t).__name__} (convbench.{op} takes any array)")


def _check_differentiable(op: str, tensors, names, out_dtype=None) -> None:
    """A ValueError, before any work, for a call whose graph would have no gradient."""
    for t, name in zip(tensors, names):
        if t is not None and t.requires_grad and t.is_complex():
            raise ValueError(f"{op}: {name} is complex and requires grad; convbench's "
                             "gradients are real only (detach it, or split real and "
                             "imaginary parts)")
    if out_dtype is not None and not getattr(torch, out_dtype).is_floating_point:
        raise ValueError(f"{op}: out_dtype={out_dtype} rounds to integers, which has no "
                         "gradient; use a floating out_dtype (or None) for tensors that "
                         "require grad, or call it under torch.no_grad()")


def _real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _spatial(x, name: str = "x", shape=None) -> int:
    """The number of spatial axes of a layer-form array (N, C, *spatial), 1 to 3."""
    ndim = len(shape) if shape is not None else x.ndim
    if not 3 <= ndim <= 5:
        got = tuple(shape) if shape is not None else tuple(x.shape)
        raise ValueError(f"{name} must have 3 to 5 dimensions (N, C, *spatial with 1-3 "
                         f"spatial axes), got shape {got}")
    return ndim - 2


def _resolved_layer_keywords(x_spatial, k_spatial, stride, padding, dilation, groups):
    n = len(k_spatial)
    stride = as_tuple(stride, n, "stride")
    dilation = as_tuple(dilation, n, "dilation")
    pads = layer_padding(x_spatial, k_spatial, padding, stride, dilation)
    return stride + tuple(_flat(pads)) + dilation + (groups,)


_remembered_layer_keywords = functools.lru_cache(maxsize=1024)(_resolved_layer_keywords)


def _plain(value) -> bool:
    """An int, a str, or a tuple of ints or of int pairs: keywords whose equal values are
    equally valid (2.0 == 2 and True == 1 are refused where 2 is not)."""
    kind = type(value)
    return kind is int or kind is str or kind is tuple and all(
        type(v) is int or type(v) is tuple and all(type(e) is int for e in v) for v in value)


def _layer_keywords(x_spatial, k_spatial, stride, padding, dilation, groups) -> list[int]:
    """The schema's geometry list (GEOMETRY), validated; remembered per shapes and plain
    keywords (a layer makes the same call every step)."""
    if (_plain(stride) and _plain(padding) and _plain(dilation) and type(groups) is int
            and not torch.compiler.is_compiling()):   # (dynamo traces through a cache)
        resolve = _remembered_layer_keywords
    else:
        resolve = _resolved_layer_keywords
    return list(resolve(tuple(x_spatial), tuple(k_spatial), stride, padding, dilation, groups))


# The layer ops' operators take their integer keywords as one list, the geometry:
#     stride (n), per-side padding (lo0, hi0, lo1, hi1, ...: 2n), dilation (n), groups
# for n spatial axes: each schema argument costs every call in torch's dispatch (its
# boxing, and a scan of the schema per argument where autograd records the call).
def _unpack(geometry: tuple) -> tuple:
    n = (len(geometry) - 1) // 4
    return (geometry[:n], _pairs(geometry[n:3 * n]), geometry[3 * n:4 * n], geometry[-1])


_remembered_unpack = functools.lru_cache(maxsize=1024)(_unpack)


def _unpacked(geometry: tuple) -> tuple:
    """(stride, per-side padding pairs, dilation, groups) of a geometry list."""
    try:
        return _remembered_unpack(geometry)
    except TypeError:           # symbolic sizes while tracing: unhashable
        return _unpack(geometry)


def _layer(geometry) -> dict:
    """The public functions' keywords (plain tuples: remembered by _layer_keywords) of a
    geometry list."""
    stride, padding, dilation, groups = _unpacked(tuple(geometry))
    return dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


# ---------------------------------------------------------------------------------------
# Image form: correlate, convolve, gaussian
# ---------------------------------------------------------------------------------------

def _image_operator(name: str):
    """The operator convbench::<name> (correlate or convolve)."""
    reversed_kernel = name == "convolve"

    @torch.library.custom_op(f"convbench::{name}", mutates_args=())
    def operator(x: Tensor, w: Tensor, border: str, cval: float, padding: str,
                 origin: list[int], out_dtype: Optional[str], algorithm: Optional[str],
                 accuracy: str) -> Tensor:
        return _run(name, (x, w), _XW, (border, cval, padding, tuple(origin), out_dtype),
                    algorithm, accuracy)

    @operator.register_fake
    def _(x, w, border, cval, padding, origin, out_dtype, algorithm, accuracy):
        return _fake(name, (x, w), dict(border=border, cval=cval, padding=padding,
                                        origin=tuple(origin), out_dtype=out_dtype))

    def setup_context(ctx, inputs, output):
        x, w, border, cval, padding, origin = inputs[:6]
        ctx.save_for_backward(x, w)
        ctx.geometry = (border, cval, padding, tuple(origin))

    def backward(ctx, gy):
        x, w = ctx.saved_tensors
        border, cval, padding, origin = ctx.geometry
        # y = valid correlation of x padded by these pairs with the (reversed) kernel:
        # a conv of one image, one channel in, one out
        pads = image_padding(tuple(w.shape), padding, origin, convolve=reversed_kernel)
        compute = torch.promote_types(gy.dtype, torch.promote_types(x.dtype, w.dtype))
        dy = gy.to(compute)[None, None]
        axes = tuple(range(w.ndim))
        kernel = w.flip(axes) if reversed_kernel else w
        layer = dict(padding=pads, border=border, cval=cval)
        gx = gw = None
        if ctx.needs_input_grad[0]:
            gx = conv_grad_input(dy, kernel.to(compute)[None, None], (1, 1) + tuple(x.shape),
                                 **layer)[0, 0].to(x.dtype)
        if ctx.needs_input_grad[1]:
            gw = conv_grad_weight(x.to(compute)[None, None], dy, (1, 1) + tuple(w.shape),
                                  **layer)[0, 0]
            gw = (gw.flip(axes) if reversed_kernel else gw).to(w.dtype)
        return gx, gw, None, None, None, None, None, None, None

    operator.register_autograd(backward, setup_context=setup_context)
    return operator


_correlate = _image_operator("correlate")
_convolve = _image_operator("convolve")


def _image_call(op, operator, x, w, border, cval, padding, origin, out_dtype, algorithm,
                accuracy):
    _check_tensors(op, (x, w), _XW)
    border = canonical_border(border)
    cval = _real(cval, "cval")
    out_dtype = normalize_out_dtype(out_dtype, op)
    if not isinstance(padding, str):
        raise ValueError(f"padding must be one of 'same', 'valid', 'full', got {padding!r}")
    # validates padding and origin (origin only with 'same') before any work
    image_padding(tuple(w.shape), padding, origin, convolve=op == "convolve")
    origin = list(as_tuple(origin, w.ndim, "origin"))
    if _needs_grad(x, w):
        _check_differentiable(op, (x, w), _XW, out_dtype)
        if not 1 <= x.ndim <= 3:
            raise ValueError(f"{op}: gradients exist here for images of 1-3 axes (they run "
                             f"as conv gradients), got x of shape {tuple(x.shape)}; detach "
                             "the tensors or call it under torch.no_grad()")
    return operator(x, w, border, cval, padding, origin, out_dtype, algorithm, accuracy)


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None,
              algorithm=None, accuracy="elementwise"):
    """convbench.correlate as the operator convbench::correlate, differentiable in x and w."""
    return _image_call("correlate", _correlate, x, w, border, cval, padding, origin, out_dtype,
                       algorithm, accuracy)


def convolve(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None,
             algorithm=None, accuracy="elementwise"):
    """convbench.convolve as the operator convbench::convolve, differentiable in x and w."""
    return _image_call("convolve", _convolve, x, w, border, cval, padding, origin, out_dtype,
                       algorithm, accuracy)


@torch.library.custom_op("convbench::gaussian", mutates_args=())
def _gaussian(x: Tensor, sigma: list[float], border: str, cval: float, truncate: float,
              out_dtype: Optional[str], algorithm: Optional[str], accuracy: str) -> Tensor:
    return _run("gaussian", (x,), _X, (tuple(sigma), border, cval, truncate, out_dtype),
                algorithm, accuracy)


@_gaussian.register_fake
def _(x, sigma, border, cval, truncate, out_dtype, algorithm, accuracy):
    return _fake("gaussian", (x,), dict(sigma=tuple(sigma), border=border, cval=cval,
                                        truncate=truncate, out_dtype=out_dtype))


def _gaussian_setup(ctx, inputs, output):
    x, sigma, border, cval, truncate = inputs[:5]
    ctx.x_meta = (tuple(x.shape), x.dtype)
    ctx.geometry = (tuple(sigma), border, truncate)


def _gaussian_backward(ctx, gy):
    shape, dtype = ctx.x_meta
    sigma, border, truncate = ctx.geometry
    if border == "constant":
        # the adjoint of a correlation with zeros outside is the correlation with the
        # reversed kernel, and the Gaussian's kernel is symmetric
        gx = gaussian(gy, list(sigma), border="constant", cval=0.0, truncate=truncate)
    else:       # other borders fold the border's gradient back into x
        compute = torch.float64 if gy.dtype == torch.float64 else torch.float32
        kernel = torch.from_numpy(gaussian_kernel(sigma, truncate)).to(gy.device, compute)
        pads = tuple((r, r) for r in (kernel_radius(s, truncate) for s in sigma))
        gx = conv_grad_input(gy[None, None], kernel[None, None], (1, 1) + shape,
                             padding=pads, border=border)[0, 0]
    return gx.to(dtype), None, None, None, None, None, None, None


_gaussian.register_autograd(_gaussian_backward, setup_context=_gaussian_setup)


def gaussian(x, sigma, *, border="constant", cval=0.0, truncate=4.0, out_dtype=None,
             algorithm=None, accuracy="elementwise"):
    """convbench.gaussian as the operator convbench::gaussian, differentiable in x."""
    _check_tensors("gaussian", (x,), _X)
    border = canonical_border(border)
    cval = _real(cval, "cval")
    truncate = _real(truncate, "truncate")
    out_dtype = normalize_out_dtype(out_dtype, "gaussian")
    if isinstance(sigma, numbers.Real) and not isinstance(sigma, bool):
        sigmas = [float(sigma)] * x.ndim
    elif isinstance(sigma, (list, tuple)) and all(
            isinstance(s, numbers.Real) and not isinstance(s, bool) for s in sigma):
        sigmas = [float(s) for s in sigma]
    else:
        raise TypeError(f"sigma must be a real number or a sequence of {x.ndim} real "
                        f"numbers, got {sigma!r}")
    if _needs_grad(x):
        _check_differentiable("gaussian", (x,), _X, out_dtype)
        if border != "constant" and not 1 <= x.ndim <= 3:
            raise ValueError(f"gaussian: gradients with border={border!r} exist here for "
                             f"images of 1-3 axes, got x of shape {tuple(x.shape)} (the "
                             "constant border has them on any rank)")
    return _gaussian(x, sigmas, border, cval, truncate, out_dtype, algorithm, accuracy)


# ---------------------------------------------------------------------------------------
# Layer form: conv and its gradients, conv_transpose
# ---------------------------------------------------------------------------------------

@torch.library.custom_op("convbench::conv", mutates_args=())
def _conv(x: Tensor, w: Tensor, bias: Optional[Tensor], geometry: list[int], border: str,
          cval: float, algorithm: Optional[str]) -> Tensor:
    return _run("conv", (x, w, bias), _XWB, _unpacked(tuple(geometry)) + (border, cval),
                algorithm, _DIRECT)


@_conv.register_fake
def _(x, w, bias, geometry, border, cval, algorithm):
    return _fake("conv", (x, w, bias), dict(_layer(geometry), border=border, cval=cval))


def _layer_setup(ctx, inputs, output):
    """Saves the two arrays and the conv geometry (stride, padding, dilation, groups,
    border, cval) of conv, conv_grad_input and conv_grad_weight."""
    first, second, third = inputs[:3]
    ctx.save_for_backward(first, second)
    ctx.bias_meta = (third.dtype,) if isinstance(third, torch.Tensor) else None
    geometry, border, cval = inputs[-4:-1]
    ctx.layer = dict(_layer(geometry), border=border, cval=cval)
    ctx.operands = (list(geometry), border, cval)


def _conv_backward(ctx, gy):
    # the gradient operators take the forward's schema values as they are (validated when
    # the forward was called): no keyword is normalised again on the way back
    x, w = ctx.saved_tensors
    geometry, border, cval = ctx.operands
    need = ctx.needs_input_grad
    gx = _cast(_conv_grad_input(gy, w, list(x.shape), geometry, border, cval, None),
               x) if need[0] else None
    gw = _cast(_conv_grad_weight(x, gy, list(w.shape), geometry, border, cval, None),
               w) if need[1] else None
    gb = None
    if need[2]:
        gb = _conv_grad_bias(gy, None)
        gb = gb if gb.dtype is ctx.bias_meta[0] else gb.to(ctx.bias_meta[0])
    return gx, gw, gb, None, None, None, None


_conv.register_autograd(_conv_backward, setup_context=_layer_setup)


def conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, border="constant",
         cval=0.0, algorithm=None):
    """convbench.conv as the operator convbench::conv, differentiable in x, w and bias
    (twice: its gradients are operators with gradients)."""
    _check_tensors("conv", (x, w, bias), _XWB)
    _spatial(x)
    geometry = _layer_keywords(x.shape[2:], w.shape[2:], stride, padding, dilation, groups)
    border = canonical_border(border)
    cval = _real(cval, "cval")
    if _needs_grad(x, w, bias):
        _check_differentiable("conv", (x, w, bias), _XWB)
    return _conv(x, w, bias, geometry, border, cval, algorithm)


@torch.library.custom_op("convbench::conv_grad_input", mutates_args=())
def _conv_grad_input(dy: Tensor, w: Tensor, input_shape: list[int], geometry: list[int],
                     border: str, cval: float, algorithm: Optional[str]) -> Tensor:
    return _run("conv_grad_input", (dy, w), ("dy", "w"),
                (tuple(input_shape),) + _unpacked(tuple(geometry)) + (border, cval), algorithm,
                _DIRECT)


@_conv_grad_input.register_fake
def _(dy, w, input_shape, geometry, border, cval, algorithm):
    return _fake("conv_grad_input", (dy, w), dict(_layer(geometry),
                                                   input_shape=tuple(input_shape),
                                                   border=border, cval=cval))


def _conv_grad_input_backward(ctx, gg):
    # conv_grad_input(dy, w) is the adjoint of x -> conv(x, w) with cval 0 (linear):
    # <gg, conv_grad_input(dy, w)> = <conv(gg, w, cval=0), dy>
    dy, w = ctx.saved_tensors
    layer = {**ctx.layer, "cval": 0.0}
    need = ctx.needs_input_grad
    g_dy = _cast(conv(gg, w, **layer), dy) if need[0] else None
    g_w = _cast(conv_grad_weight(gg, dy, tuple(w.shape), **layer), w) if need[1] else None
    return g_dy, g_w, None, None, None, None, None


_conv_grad_input.register_autograd(_conv_grad_input_backward, setup_context=_layer_setup)


def conv_grad_input(dy, w, input_shape, *, stride=1, padding=0, dilation=1, groups=1,
                    border="constant", cval=0.0, algorithm=None):
    """convbench.conv_grad_input as the operator convbench::conv_grad_input (differentiable
    in dy and w: conv's double backward)."""
    _check_tensors("conv_grad_input", (dy, w), ("dy", "w"))
    input_shape = [int(n) for n in input_shape]
    _spatial(None, "input_shape", input_shape)
    geometry = _layer_keywords(input_shape[2:], w.shape[2:], stride, padding, dilation, groups)
    return _conv_grad_input(dy, w, input_shape, geometry, canonical_border(border),
                            _real(cval, "cval"), algorithm)


@torch.library.custom_op("convbench::conv_grad_weight", mutates_args=())
def _conv_grad_weight(x: Tensor, dy: Tensor, weight_shape: list[int], geometry: list[int],
                      border: str, cval: float, algorithm: Optional[str]) -> Tensor:
    return _run("conv_grad_weight", (x, dy), ("x", "dy"),
                (tuple(weight_shape),) + _unpacked(tuple(geometry)) + (border, cval), algorithm,
                _DIRECT)


@_conv_grad_weight.register_fake
def _(x, dy, weight_shape, geometry, border, cval, algorithm):
    return _fake("conv_grad_weight", (x, dy), dict(_layer(geometry),
                                                    weight_shape=tuple(weight_shape),
                                                    border=border, cval=cval))


def _conv_grad_weight_backward(ctx, gg):
    # <gg, conv_grad_weight(x, dy)> = <dy, conv(x, gg)>: affine in x (cval is a value the
    # kernel reads), linear in dy
    x, dy = ctx.saved_tensors
    layer = ctx.layer
    need = ctx.needs_input_grad
    g_x = _cast(conv_grad_input(dy, gg, tuple(x.shape), **layer), x) if need[0] else None
    g_dy = _cast(conv(x, gg, **layer), dy) if need[1] else None
    return g_x, g_dy, None, None, None, None, None


_conv_grad_weight.register_autograd(_conv_grad_weight_backward, setup_context=_layer_setup)


def conv_grad_weight(x, dy, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                     border="constant", cval=0.0, algorithm=None):
    """convbench.conv_grad_weight as the operator convbench::conv_grad_weight
    (differentiable in x and dy: conv's double backward)."""
    _check_tensors("conv_grad_weight", (x, dy), ("x", "dy"))
    _spatial(x)
    weight_shape = [int(n) for n in weight_shape]
    geometry = _layer_keywords(x.shape[2:], weight_shape[2:], stride, padding, dilation,
                               groups)
    return _conv_grad_weight(x, dy, weight_shape, geometry, canonical_border(border),
                             _real(cval, "cval"), algorithm)


@torch.library.custom_op("convbench::conv_grad_bias", mutates_args=())
def _conv_grad_bias(dy: Tensor, algorithm: Optional[str]) -> Tensor:
    return _run("conv_grad_bias", (dy,), ("dy",), (), algorithm, _DIRECT)


@_conv_grad_bias.register_fake
def _(dy, algorithm):
    return _fake("conv_grad_bias", (dy,), {})


def _conv_grad_bias_setup(ctx, inputs, output):
    ctx.dy_meta = (tuple(inputs[0].shape), inputs[0].dtype)


def _conv_grad_bias_backward(ctx, gg):
    shape, dtype = ctx.dy_meta
    spread = gg.reshape((1, shape[1]) + (1,) * (len(shape) - 2)).expand(shape)
    return spread.to(dtype), None


_conv_grad_bias.register_autograd(_conv_grad_bias_backward, setup_context=_conv_grad_bias_setup)


def conv_grad_bias(dy, *, algorithm=None):
    """convbench.conv_grad_bias as the operator convbench::conv_grad_bias."""
    _check_tensors("conv_grad_bias", (dy,), ("dy",))
    return _conv_grad_bias(dy, algorithm)


@torch.library.custom_op("convbench::conv_transpose", mutates_args=())
def _conv_transpose(x: Tensor, w: Tensor, bias: Optional[Tensor], stride: list[int],
                    padding: list[int], output_padding: list[int], dilation: list[int],
                    groups: int, algorithm: Optional[str]) -> Tensor:
    return _run("conv_transpose", (x, w, bias), _XWB,
                (tuple(stride), tuple(padding), tuple(output_padding), tuple(dilation), groups),
                algorithm, _DIRECT)


@_conv_transpose.register_fake
def _(x, w, bias, stride, padding, output_padding, dilation, groups, algorithm):
    return _fake("conv_transpose", (x, w, bias),
                 dict(stride=tuple(stride), padding=tuple(padding),
                      output_padding=tuple(output_padding), dilation=tuple(dilation),
                      groups=groups))


def _conv_transpose_setup(ctx, inputs, output):
    x, w, bias, stride, padding, output_padding, dilation, groups = inputs[:8]
    ctx.save_for_backward(x, w)
    ctx.bias_meta = (bias.dtype,) if bias is not None else None
    ctx.geometry = (tuple(stride), tuple(padding), tuple(dilation), groups)


def _conv_transpose_backward(ctx, gy):
    # conv_transpose(x, w) is conv_grad_input with x as dy: x's gradient is conv of gy,
    # w's is conv_grad_weight with gy as the input and x as dy. conv reads gy up to
    # (in-1)*stride + (k-1)*dilation + 1 - padding per axis; what output_padding adds
    # beyond that holds only bias, so gy is cut there and the high padding fits exactly
    x, w = ctx.saved_tensors
    stride, padding, dilation, groups = ctx.geometry
    pads, keep = [], []
    for size, k, out, s, d, p in zip(x.shape[2:], w.shape[2:], gy.shape[2:], stride,
                                     dilation, padding):
        extent = (size - 1) * s + (k - 1) * d + 1
        pads.append((p, max(0, extent - p - out)))
        keep.append(min(out, extent - p))
    g = gy[(slice(None), slice(None)) + tuple(slice(0, n) for n in keep)]
    layer = dict(stride=stride, padding=tuple(pads), dilation=dilation, groups=groups)
    need = ctx.needs_input_grad
    gx = _cast(conv(g, w, **layer), x) if need[0] else None
    gw = _cast(conv_grad_weight(g, x, tuple(w.shape), **layer), w) if need[1] else None
    gb = conv_grad_bias(gy).to(ctx.bias_meta[0]) if need[2] else None
    return gx, gw, gb, None, None, None, None, None, None


_conv_transpose.register_autograd(_conv_transpose_backward, setup_context=_conv_transpose_setup)


def conv_transpose(x, w, bias=None, *, stride=1, padding=0, output_padding=0, dilation=1,
                   groups=1, algorithm=None):
    """convbench.conv_transpose as the operator convbench::conv_transpose, differentiable
    in x, w and bias (twice, through conv)."""
    _check_tensors("conv_transpose", (x, w, bias), _XWB)
    n = _spatial(x)
    if isinstance(padding, str):
        raise TypeError(f"padding of conv_transpose must be an int or a tuple of {n} ints, "
                        f"got {padding!r}")
    stride, padding, output_padding, dilation = (
        list(as_tuple(v, n, name)) for v, name in ((stride, "stride"), (padding, "padding"),
                                                   (output_padding, "output_padding"),
                                                   (dilation, "dilation")))
    if _needs_grad(x, w, bias):
        _check_differentiable("conv_transpose", (x, w, bias), _XWB)
    return _conv_transpose(x, w, bias, stride, padding, output_padding, dilation, groups,
                           algorithm)


# ---------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------

def _pool_tuples(n: int, kernel_size, stride, padding=0, dilation=1):
    kernel = list(as_tuple(kernel_size, n, "kernel_size"))
    stride = kernel if stride is None else list(as_tuple(stride, n, "stride"))
    return kernel, stride, list(as_tuple(padding, n, "padding")), \
        list(as_tuple(dilation, n, "dilation"))


@torch.library.custom_op("convbench::max_pool", mutates_args=())
def _max_pool(x: Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
              dilation: list[int], ceil_mode: bool, algorithm: Optional[str]) -> Tensor:
    return _run("max_pool", (x,), _X, (tuple(kernel_size), tuple(stride), tuple(padding),
                                       tuple(dilation), ceil_mode), algorithm, _DIRECT)


@_max_pool.register_fake
def _(x, kernel_size, stride, padding, dilation, ceil_mode, algorithm):
    return _fake("max_pool", (x,), dict(kernel_size=tuple(kernel_size), stride=tuple(stride),
                                        padding=tuple(padding), dilation=tuple(dilation),
                                        ceil_mode=ceil_mode))


def _max_pool_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])
    ctx.params = inputs[1:6]


def _max_pool_backward(ctx, gy):
    (x,) = ctx.saved_tensors
    kernel, stride, padding, dilation, ceil_mode = ctx.params
    # the forward's schema values, as they are (validated when the forward was called)
    gx = _max_pool_grad(gy, x, kernel, stride, padding, dilation, ceil_mode, None)
    return _cast(gx, x), None, None, None, None, None, None


_max_pool.register_autograd(_max_pool_backward, setup_context=_max_pool_setup)


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
             algorithm=None):
    """convbench.max_pool as the operator convbench::max_pool, differentiable in x."""
    _check_tensors("max_pool", (x,), _X)
    kernel, stride, padding, dilation = _pool_tuples(_spatial(x), kernel_size, stride,
                                                     padding, dilation)
    return _max_pool(x, kernel, stride, padding, dilation, bool(ceil_mode), algorithm)


@torch.library.custom_op("convbench::max_pool_grad", mutates_args=())
def _max_pool_grad(dy: Tensor, x: Tensor, kernel_size: list[int], stride: list[int],
                   padding: list[int], dilation: list[int], ceil_mode: bool,
                   algorithm: Optional[str]) -> Tensor:
    return _run("max_pool_grad", (dy, x), ("dy", "x"),
                (tuple(kernel_size), tuple(stride), tuple(padding), tuple(dilation), ceil_mode),
                algorithm, _DIRECT)


@_max_pool_grad.register_fake
def _(dy, x, kernel_size, stride, padding, dilation, ceil_mode, algorithm):
    return _fake("max_pool_grad", (dy, x),
                 dict(kernel_size=tuple(kernel_size), stride=tuple(stride),
                      padding=tuple(padding), dilation=tuple(dilation), ceil_mode=ceil_mode))


def max_pool_grad(dy, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                  algorithm=None):
    """The gradient op max_pool_grad as the operator convbench::max_pool_grad (no gradient
    of its own: backward through it raises)."""
    _check_tensors("max_pool_grad", (dy, x), ("dy", "x"))
    kernel, stride, padding, dilation = _pool_tuples(_spatial(x), kernel_size, stride,
                                                     padding, dilation)
    return _max_pool_grad(dy, x, kernel, stride, padding, dilation, bool(ceil_mode), algorithm)


@torch.library.custom_op("convbench::avg_pool", mutates_args=())
def _avg_pool(x: Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
              ceil_mode: bool, count_include_pad: bool, divisor_override: Optional[int],
              algorithm: Optional[str]) -> Tensor:
    return _run("avg_pool", (x,), _X, (tuple(kernel_size), tuple(stride), tuple(padding),
                                       ceil_mode, count_include_pad, divisor_override),
                algorithm, _DIRECT)


@_avg_pool.register_fake
def _(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
      algorithm):
    return _fake("avg_pool", (x,), dict(kernel_size=tuple(kernel_size), stride=tuple(stride),
                                        padding=tuple(padding), ceil_mode=ceil_mode,
                                        count_include_pad=count_include_pad,
                                        divisor_override=divisor_override))


def _avg_pool_setup(ctx, inputs, output):
    ctx.x_meta = (list(inputs[0].shape), inputs[0].dtype)
    ctx.params = inputs[1:7]


def _avg_pool_backward(ctx, gy):
    shape, dtype = ctx.x_meta
    gx = avg_pool_grad(gy, shape, *ctx.params)
    return gx.to(dtype), None, None, None, None, None, None, None


_avg_pool.register_autograd(_avg_pool_backward, setup_context=_avg_pool_setup)


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
             divisor_override=None, *, algorithm=None):
    """convbench.avg_pool as the operator convbench::avg_pool, differentiable in x (twice)."""
    _check_tensors("avg_pool", (x,), _X)
    kernel, stride, padding, _ = _pool_tuples(_spatial(x), kernel_size, stride, padding)
    return _avg_pool(x, kernel, stride, padding, bool(ceil_mode), bool(count_include_pad),
                     divisor_override, algorithm)


@torch.library.custom_op("convbench::avg_pool_grad", mutates_args=())
def _avg_pool_grad(dy: Tensor, input_shape: list[int], kernel_size: list[int],
                   stride: list[int], padding: list[int], ceil_mode: bool,
                   count_include_pad: bool, divisor_override: Optional[int],
                   algorithm: Optional[str]) -> Tensor:
    return _run("avg_pool_grad", (dy,), ("dy",),
                (tuple(input_shape), tuple(kernel_size), tuple(stride), tuple(padding),
                 ceil_mode, count_include_pad, divisor_override), algorithm, _DIRECT)


@_avg_pool_grad.register_fake
def _(dy, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
      divisor_override, algorithm):
    return _fake("avg_pool_grad", (dy,),
                 dict(input_shape=tuple(input_shape), kernel_size=tuple(kernel_size),
                      stride=tuple(stride), padding=tuple(padding), ceil_mode=ceil_mode,
                      count_include_pad=count_include_pad, divisor_override=divisor_override))


def _avg_pool_grad_setup(ctx, inputs, output):
    ctx.dy_dtype = inputs[0].dtype
    ctx.params = inputs[2:8]


def _avg_pool_grad_backward(ctx, gg):
    # avg_pool_grad is linear in dy and the adjoint of avg_pool: its own adjoint is avg_pool
    g_dy = avg_pool(gg, *ctx.params)
    return g_dy.to(ctx.dy_dtype), None, None, None, None, None, None, None, None


_avg_pool_grad.register_autograd(_avg_pool_grad_backward, setup_context=_avg_pool_grad_setup)


def avg_pool_grad(dy, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                  count_include_pad=True, divisor_override=None, *, algorithm=None):
    """The gradient op avg_pool_grad as the operator convbench::avg_pool_grad."""
    _check_tensors("avg_pool_grad", (dy,), ("dy",))
    input_shape = [int(n) for n in input_shape]
    n = _spatial(None, "input_shape", input_shape)
    kernel, stride, padding, _ = _pool_tuples(n, kernel_size, stride, padding)
    return _avg_pool_grad(dy, input_shape, kernel, stride, padding, bool(ceil_mode),
                          bool(count_include_pad), divisor_override, algorithm)


@torch.library.custom_op("convbench::lp_pool", mutates_args=())
def _lp_pool(x: Tensor, norm_type: float, kernel_size: list[int], stride: list[int],
             ceil_mode: bool, algorithm: Optional[str]) -> Tensor:
    return _run("lp_pool", (x,), _X, (norm_type, tuple(kernel_size), tuple(stride), ceil_mode),
                algorithm, _DIRECT)


@_lp_pool.register_fake
def _(x, norm_type, kernel_size, stride, ceil_mode, algorithm):
    return _fake("lp_pool", (x,), dict(norm_type=norm_type, kernel_size=tuple(kernel_size),
                                       stride=tuple(stride), ceil_mode=ceil_mode))


def _lp_pool_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])
    ctx.params = inputs[1:5]


def _lp_pool_backward(ctx, gy):
    (x,) = ctx.saved_tensors
    norm_type, kernel, stride, ceil_mode = ctx.params
    gx = lp_pool_grad(gy, x, norm_type, kernel, stride, ceil_mode)
    return gx.to(x.dtype), None, None, None, None, None


_lp_pool.register_autograd(_lp_pool_backward, setup_context=_lp_pool_setup)


def _norm_type(norm_type) -> float:
    p = _real(norm_type, "norm_type")
    if math.isnan(p):
        raise ValueError(f"norm_type must be a number other than NaN, got {norm_type!r}")
    return p


def lp_pool(x, norm_type, kernel_size, stride=None, ceil_mode=False, *, algorithm=None):
    """convbench.lp_pool as the operator convbench::lp_pool, differentiable in x."""
    _check_tensors("lp_pool", (x,), _X)
    kernel, stride, _, _ = _pool_tuples(_spatial(x), kernel_size, stride)
    return _lp_pool(x, _norm_type(norm_type), kernel, stride, bool(ceil_mode), algorithm)


@torch.library.custom_op("convbench::lp_pool_grad", mutates_args=())
def _lp_pool_grad(dy: Tensor, x: Tensor, norm_type: float, kernel_size: list[int],
                  stride: list[int], ceil_mode: bool, algorithm: Optional[str]) -> Tensor:
    return _run("lp_pool_grad", (dy, x), ("dy", "x"),
                (norm_type, tuple(kernel_size), tuple(stride), ceil_mode), algorithm, _DIRECT)


@_lp_pool_grad.register_fake
def _(dy, x, norm_type, kernel_size, stride, ceil_mode, algorithm):
    return _fake("lp_pool_grad", (dy, x), dict(norm_type=norm_type,
                                               kernel_size=tuple(kernel_size),
                                               stride=tuple(stride), ceil_mode=ceil_mode))


def lp_pool_grad(dy, x, norm_type, kernel_size, stride=None, ceil_mode=False, *,
                 algorithm=None):
    """The gradient op lp_pool_grad as the operator convbench::lp_pool_grad (no gradient
    of its own: backward through it raises)."""
    _check_tensors("lp_pool_grad", (dy, x), ("dy", "x"))
    kernel, stride, _, _ = _pool_tuples(_spatial(x), kernel_size, stride)
    return _lp_pool_grad(dy, x, _norm_type(norm_type), kernel, stride, bool(ceil_mode),
                         algorithm)


# ---------------------------------------------------------------------------------------
# Batch normalisation
# ---------------------------------------------------------------------------------------

_BATCH_NORM = ("x", "running_mean", "running_var", "weight", "bias")
_BATCH_NORM_GRAD = ("dy", "x", "running_mean", "running_var", "weight")


def _run_several(op: str, tensors: tuple, names: tuple, params: tuple, algorithm):
    """_run for an op with several outputs: new tensors, none sharing an input's memory."""
    detached = tuple(t.detach() for t in tensors)
    outs = plans.cached(op, detached, names, params, algorithm, _DIRECT)
    ptrs = {t.untyped_storage().data_ptr() for t in detached}
    return tuple(o.clone() if o.untyped_storage().data_ptr() in ptrs or not o.is_contiguous()
                 else o for o in outs)


def _several_fake(op: str, tensors: tuple, kwargs: dict):
    from convbench.spec import Spec

    spec = Spec.make(op, [tuple(t.shape) for t in tensors],
                     [_dtype_name(t.dtype) for t in tensors], **kwargs)
    record = spec.operation
    return tuple(tensors[0].new_empty(shape, dtype=getattr(torch, dtype))
                 for shape, dtype in zip(record.output_shapes(spec), record.output_dtypes(spec)))


def _filled(x, running_mean, running_var, weight, bias, training):
    from convbench.ops.batch_norm import fill_arrays

    return fill_arrays(x, running_mean, running_var, weight, bias, training)


@torch.library.custom_op("convbench::batch_norm", mutates_args=())
def _batch_norm(x: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
                weight: Optional[Tensor], bias: Optional[Tensor], training: bool,
                momentum: float, eps: float,
                algorithm: Optional[str]) -> tuple[Tensor, Tensor, Tensor]:
    arrays = _filled(x, running_mean, running_var, weight, bias, training)
    return _run_several("batch_norm", arrays, _BATCH_NORM, (training, momentum, eps),
                        algorithm)


@_batch_norm.register_fake
def _(x, running_mean, running_var, weight, bias, training, momentum, eps, algorithm):
    arrays = _filled(x, running_mean, running_var, weight, bias, training)
    return _several_fake("batch_norm", arrays, dict(training=training, momentum=momentum,
                                                    eps=eps))


def _batch_norm_setup(ctx, inputs, output):
    x, running_mean, running_var, weight, bias, training, momentum, eps = inputs[:8]
    ctx.mark_non_differentiable(output[1], output[2])
    # training normalises with the batch's statistics: the running ones are not needed
    # (and are updated in place after this call, which a saved tensor must not see)
    saved = (x, weight) if training else (x, weight, running_mean, running_var)
    ctx.save_for_backward(*(t for t in saved if t is not None))
    ctx.meta = (training, eps, weight is not None, bias.dtype if bias is not None else None)


def _batch_norm_backward(ctx, gy, g_mean, g_var):
    training, eps, has_weight, bias_dtype = ctx.meta
    saved = list(ctx.saved_tensors)
    x = saved.pop(0)
    weight = saved.pop(0) if has_weight else None
    running = (None, None) if training else tuple(saved)
    dx, dweight, dbias = batch_norm_grad(gy, x, *running, weight, training=training, eps=eps)
    need = ctx.needs_input_grad
    return (dx.to(x.dtype) if need[0] else None, None, None,
            dweight.to(weight.dtype) if need[3] else None,
            dbias.to(bias_dtype) if need[4] else None, None, None, None, None)


_batch_norm.register_autograd(_batch_norm_backward, setup_context=_batch_norm_setup)


@torch.library.custom_op("convbench::batch_norm_grad", mutates_args=())
def _batch_norm_grad(dy: Tensor, x: Tensor, running_mean: Optional[Tensor],
                     running_var: Optional[Tensor], weight: Optional[Tensor], training: bool,
                     eps: float, algorithm: Optional[str]) -> tuple[Tensor, Tensor, Tensor]:
    filled = _filled(x, running_mean, running_var, weight, None, training)[:4]
    return _run_several("batch_norm_grad", (dy,) + filled, _BATCH_NORM_GRAD, (training, eps),
                        algorithm)


@_batch_norm_grad.register_fake
def _(dy, x, running_mean, running_var, weight, training, eps, algorithm):
    filled = _filled(x, running_mean, running_var, weight, None, training)[:4]
    return _several_fake("batch_norm_grad", (dy,) + filled, dict(training=training, eps=eps))


def _check_batch_norm(x, running_mean, running_var, weight, bias, training):
    tensors = (x, running_mean, running_var, weight, bias)
    _check_tensors("batch_norm", tensors, _BATCH_NORM)
    if _needs_grad(*tensors):
        _check_differentiable("batch_norm", tensors, _BATCH_NORM)
        for t, name in ((running_mean, "running_mean"), (running_var, "running_var")):
            if t is not None and t.requires_grad:
                raise ValueError(f"batch_norm: {name} requires grad, but the running "
                                 "statistics have no gradient (as in torch: they are "
                                 "buffers); pass them detached")


def batch_norm_outputs(x, running_mean, running_var, weight=None, bias=None, training=False,
                       momentum=0.1, eps=1e-5, *, algorithm=None):
    """The operator convbench::batch_norm's three outputs (y, new running_mean, new
    running_var), nothing updated: what convbench.batch_norm's route returns."""
    _check_batch_norm(x, running_mean, running_var, weight, bias, training)
    return _batch_norm(x, running_mean, running_var, weight, bias, bool(training),
                       _real(momentum, "momentum"), _real(eps, "eps"), algorithm)


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, algorithm=None):
    """convbench.batch_norm as the operator convbench::batch_norm, differentiable in x,
    weight and bias; in training the given running statistics are updated in place (as
    torch.nn.functional.batch_norm does)."""
    y, new_mean, new_var = batch_norm_outputs(x, running_mean, running_var, weight, bias,
                                              training, momentum, eps, algorithm=algorithm)
    if training:
        with torch.no_grad():
            if running_mean is not None:
                running_mean.copy_(new_mean)
            if running_var is not None:
                running_var.copy_(new_var)
    return y


def batch_norm_grad(dy, x, running_mean, running_var, weight, training=False, eps=1e-5, *,
                    algorithm=None):
    """The gradient op batch_norm_grad, (dx, dweight, dbias), as the operator
    convbench::batch_norm_grad (no gradient of its own: backward through it raises)."""
    _check_tensors("batch_norm_grad", (dy, x, running_mean, running_var, weight),
                   _BATCH_NORM_GRAD)
    return _batch_norm_grad(dy, x, running_mean, running_var, weight, bool(training),
                            _real(eps, "eps"), algorithm)


# ---------------------------------------------------------------------------------------
# The route of the public functions (plans._route) for tensors that require grad
# ---------------------------------------------------------------------------------------

FUNCTIONS = {f.__name__: f for f in (
    correlate, convolve, gaussian, conv, conv_transpose, conv_grad_input, conv_grad_weight,
    conv_grad_bias, max_pool, max_pool_grad, avg_pool, avg_pool_grad, lp_pool, lp_pool_grad,
    batch_norm_grad)}
# convbench.batch_norm updates the running statistics itself from the op's outputs
FUNCTIONS["batch_norm"] = batch_norm_outputs
_WITH_ACCURACY = ("correlate", "convolve", "gaussian")


def apply(op: str, arrays: tuple, names: tuple, params: tuple, algorithm, accuracy):
    """Run ``op`` through its operator (``params``: the op's keyword values in its record's
    order, as plans.cached takes them), so the graph is recorded. An op without an
    operator raises ValueError: its result could not carry a gradient."""
    function = FUNCTIONS.get(op)
    if function is None:
        raise ValueError(f"{op} has no torch operator, so its result cannot carry a gradient; "
                         "call it under torch.no_grad() or with detached tensors"
                         + (" (conv then torch.relu is differentiable)" if op == "conv_relu"
                            else ""))
    record = get_op(op)
    kwargs = dict(zip((k for k, _ in record.defaults), params))
    if op in _WITH_ACCURACY:
        kwargs["accuracy"] = accuracy
    return function(*arrays[:len(record.arrays)], algorithm=algorithm, **kwargs)
