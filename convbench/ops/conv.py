"""Layer-form ops: conv, conv_transpose, conv_grad_input, conv_grad_weight, conv_grad_bias.

torch.nn.functional's signatures (``refimpl/conv.py`` defines them). Arrays are floating
(float16, float32, float64, and bfloat16 tensors, all of one dtype then; integer images
belong to the image form, convbench.correlate).
Every shape and padding comes from ``refimpl.conv.validate`` / ``validate_transpose`` (which
ask ``refimpl.geometry``); nothing here derives them again, except the per-axis counts of
the error bound (``terms``) and of the border zones, which list what the oracle loops over.

The error bound (convbench.tolerance) evaluates each op on absolute values: every op here
is multilinear in its arrays (and in ``cval``), so |op(x, w)| <= op(|x|, |w|) with ``cval``
replaced by ``|cval|`` holds term by term.
"""
from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np

from convbench.cases import conv as cases
from convbench.dtypes import float_result
from convbench.ops import REQUIRED, Asv, Operation, check_cval_fits, nbytes, shape_str, short_dtype
from refimpl import conv as ref
from refimpl.geometry import as_tuple
from refimpl.pad import canonical_border, source_index

DTYPES = ("float16", "bfloat16", "float32", "float64")

# The Python oracles' cost is counted in "products" of verification.WHOLE_LIMIT, which
# computes an oracle whole up to 300_000 of them (about a second): one unit ~ 3.3 us.
# Measured per-element costs of refimpl/conv.py (microseconds), so that work(spec) is the
# real cost of the whole oracle and large cases go to the pointwise oracles instead.
_US_PER_UNIT = 1e6 / 300_000
_US = {"conv_output": 13.0, "conv_term": 0.5, "pad": 17.0, "transpose_term": 2.3,
       "transpose_output": 10.0, "grad_input_term": 4.2, "grad_weight_output": 25.0,
       "grad_weight_term": 0.05, "grad_bias": 2.1}


def _units(microseconds: float) -> float:
    return microseconds / _US_PER_UNIT


# ---------------------------------------------------------------------------------------
# Normalising parameters (hashable, the user's form kept) and checking arrays
# ---------------------------------------------------------------------------------------

def _int_or_tuple(value, name: str):
    """An int, or a tuple of ints (nested pairs kept); validation is refimpl's."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a tuple of ints, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of ints, got {value!r}") from None
    return tuple(_int_or_tuple(v, name) for v in items)


def _collapse(value):
    """A per-axis tuple with one value on every axis, as that int (shorter ids, equal specs)."""
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value) \
            and len(set(value)) == 1:
        return value[0]
    return value


def _check_arrays(names, shapes, dtypes) -> None:
    for name, shape, dtype in zip(names, shapes, dtypes):
        if dtype not in DTYPES:
            raise TypeError(f"{name} has dtype {dtype}; the layer form takes {', '.join(DTYPES)} "
                            "arrays (convert it first; integer images go through "
                            "convbench.correlate)")
        if any(n < 1 for n in shape):
            raise ValueError(f"{name} must not be empty, got shape {tuple(shape)}")
    float_result(names, dtypes)          # bfloat16 only beside bfloat16


def _shape_param(value, name: str) -> tuple[int, ...]:
    if value is None:
        raise TypeError(f"missing required argument {name!r} (a shape tuple)")
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a sequence of ints, got {value!r}")
    items = tuple(value)
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
               for v in items):
        raise TypeError(f"{name} must be a sequence of ints, got {value!r}")
    return tuple(int(v) for v in items)


def _fmt(value) -> str:
    if isinstance(value, tuple):
        if any(isinstance(v, tuple) for v in value):       # per-side pairs
            return ",".join(f"({_fmt(v)})" for v in value)
        return ",".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _axis_taps(out: int, k: int, s: int, d: int, lo: int, size: int, border: str):
    """For one axis: source index per (output position p, tap r), None for cval."""
    return [[source_index(p * s + r * d - lo, size, border) for r in range(k)] for p in range(out)]


# ---------------------------------------------------------------------------------------
# The ops
# ---------------------------------------------------------------------------------------

_GEOMETRY = ("stride", "padding", "dilation", "groups", "border", "cval")


@dataclass(frozen=True)
class LayerOp(Operation):
    """Common parts of the layer-form ops."""

    def spec_id(self, spec) -> str:
        kw = spec.kwargs
        parts = [self.name] + [f"{a}{shape_str(s)}" for a, s in zip(self.arrays, spec.shapes)]
        parts += self._shape_params(spec)
        defaults = dict(self.defaults)
        for key, value in spec.params:
            if key in ("border", "input_shape", "weight_shape") or value == defaults.get(key):
                continue
            if key == "cval" and kw.get("border") != "constant":
                continue
            parts.append(f"{key}={_fmt(value)}")
        if kw.get("border", "constant") != "constant":
            parts.append(kw["border"])
        dtypes = sorted(set(spec.dtypes), key=spec.dtypes.index)
        parts.append("-".join(short_dtype(d) for d in dtypes))
        return "-".join(parts)

    def _shape_params(self, spec) -> list[str]:
        return []

    def result_dtype(self, spec) -> np.dtype:
        """numpy's result dtype; TypeError for bfloat16 (convbench.dtypes.float_result)."""
        return np.result_type(*spec.dtypes)

    def _normalize_geometry(self, params: dict) -> dict:
        for key in ("stride", "dilation", "padding", "output_padding"):
            if key in params:
                params[key] = _int_or_tuple(params[key], key)
        if "border" in params:
            params["border"] = canonical_border(params["border"])
        if "groups" in params and isinstance(params["groups"], numbers.Integral) \
                and not isinstance(params["groups"], bool):
            params["groups"] = int(params["groups"])
        return params

    def _finish(self, params: dict, dtypes) -> dict:
        """After validation: floats as floats, per-axis tuples of one value as ints, and a
        cval the result dtype can hold (one it cannot would fill the border with Inf)."""
        for key in ("stride", "dilation", "padding", "output_padding"):
            if key in params:
                params[key] = _collapse(params[key])
        if "cval" in params:
            params["cval"] = float(params["cval"]) if params["border"] == "constant" else 0.0
            check_cval_fits(params["cval"], [float_result(dtypes, dtypes)])
        return params

    def temporaries(self, spec):
        """A padded copy of the input (of ``input_shape`` for conv_grad_input)."""
        layer = self.layer(spec)
        padded = [layer.batch, layer.in_channels] + [
            n + lo + hi for n, (lo, hi) in zip(layer.in_spatial, layer.pads)]
        return {"padded copy": nbytes(padded, float_result(spec.dtypes, spec.dtypes))}

    def layer(self, spec):
        """refimpl's resolved conv call (pads, out_spatial, ...) for this spec."""
        raise NotImplementedError


def _conv_kwargs(spec) -> dict:
    return {k: v for k, v in spec.params if k in _GEOMETRY}


@dataclass(frozen=True)
class Conv(LayerOp):
    """``conv(x, w, bias=None, *, stride, padding, dilation, groups, border, cval)``."""

    def normalize(self, shapes, dtypes, kwargs) -> dict:
        params = self.parameters(kwargs)
        if len(shapes) not in (2, 3) or len(dtypes) != len(shapes):
            raise ValueError(f"conv takes arrays x, w and optionally bias, got {len(shapes)} "
                             "shapes")
        _check_arrays(self.arrays, shapes, dtypes)
        params = self._normalize_geometry(params)
        layer = ref.validate(shapes[0], shapes[1], **params)
        if len(shapes) == 3 and tuple(shapes[2]) != (layer.out_channels,):
            raise ValueError(f"bias must have shape (O,) = ({layer.out_channels},), got "
                             f"{tuple(shapes[2])}")
        return self._finish(params, dtypes)

    def layer(self, spec):
        return ref.validate(spec.shapes[0], spec.shapes[1], **_conv_kwargs(spec))

    def output_shape(self, spec):
        return self.layer(spec).out_shape

    def oracle(self, spec, arrays):
        return ref.conv(*arrays, **spec.kwargs)

    def oracle_at(self, spec, arrays, index):
        x, w, *bias = arrays
        return ref.conv_at(x, w, bias[0] if bias else None, index, **spec.kwargs)

    def terms(self, spec):
        layer = self.layer(spec)
        return layer.in_per_group * math.prod(layer.kernel) + (len(spec.shapes) == 3)

    def work(self, spec):
        layer = self.layer(spec)
        outputs = math.prod(layer.out_shape)
        padded = layer.batch * layer.in_channels * math.prod(
            n + lo + hi for n, (lo, hi) in zip(layer.in_spatial, layer.pads))
        return _units(outputs * (_US["conv_output"] + _US["conv_term"] * self.terms(spec))
                      + padded * _US["pad"])

    def border_zones(self, spec):
        layer = self.layer(spec)
        zones = [(0, 0), (0, 0)]
        for out, k, s, d, (lo, _), size in zip(layer.out_spatial, layer.kernel, layer.stride,
                                               layer.dilation, layer.pads, layer.in_spatial):
            # output p reads the low border when p*s - lo < 0, the high one when its last
            # tap p*s + (k-1)*d - lo >= size
            low = sum(1 for p in range(out) if p * s - lo < 0)
            high = sum(1 for p in range(out) if p * s + (k - 1) * d - lo >= size)
            zones.append((low, high))
        return tuple(zones)

    def winograd_scale(self, spec, arrays, points=None):
        """(terms, scale) of the 'winograd' error model (convbench.tolerance): the channels
        summed per output, C/groups (+1 with bias), and this op on absolute values with
        the kernel replaced by its Winograd F(2x2,3x3) kernel W(|w|) (|cval| too), whole
        or at ``points``. Only for 3x3, stride-1, dilation-1 layers on 2 spatial axes."""
        from convbench.tolerance import winograd_kernel

        layer = self.layer(spec)
        if layer.kernel != (3, 3) or layer.stride != (1, 1) or layer.dilation != (1, 1):
            raise ValueError(f"the 'winograd' model is for 3x3 stride-1 dilation-1 2-D "
                             f"layers, not {spec.id}")
        x, w, *bias = arrays
        terms = layer.in_per_group + (len(spec.shapes) == 3)
        return terms, self.error_scale(spec, (x, winograd_kernel(w), *bias), points)

    def fft_sizes(self, spec):
        """(samples of the padded input over N and C, FFT length of one plane)."""
        layer = self.layer(spec)
        padded = [n + lo + hi for n, (lo, hi) in zip(layer.in_spatial, layer.pads)]
        return (layer.batch * layer.in_channels * math.prod(padded),
                math.prod(p + (k - 1) * d for p, k, d in zip(padded, layer.kernel,
                                                             layer.dilation)))


def _transpose_axes(spec):
    """Per axis: (input size, kernel, stride, dilation, padding) of a conv_transpose spec."""
    x_shape, w_shape = spec.shapes[0], spec.shapes[1]
    n = len(x_shape) - 2
    kw = spec.kwargs
    per_axis = [as_tuple(kw[key], n, key) for key in ("stride", "dilation", "padding")]
    return list(zip(x_shape[2:], w_shape[2:], *per_axis))


@dataclass(frozen=True)
class ConvTranspose(LayerOp):
    """``conv_transpose(x, w, bias=None, *, stride, padding, output_padding, dilation, groups)``."""

    def normalize(self, shapes, dtypes, kwargs) -> dict:
        params = self.parameters(kwargs)
        if len(shapes) not in (2, 3) or len(dtypes) != len(shapes):
            raise ValueError(f"conv_transpose takes arrays x, w and optionally bias, got "
                             f"{len(shapes)} shapes")
        _check_arrays(self.arrays, shapes, dtypes)
        params = self._normalize_geometry(params)
        out_shape = ref.validate_transpose(shapes[0], shapes[1], **params)
        if len(shapes) == 3 and tuple(shapes[2]) != (out_shape[1],):
            raise ValueError(f"bias must have shape (O,) = ({out_shape[1]},), got "
                             f"{tuple(shapes[2])}")
        return self._finish(params, dtypes)

    def output_shape(self, spec):
        return ref.validate_transpose(spec.shapes[0], spec.shapes[1], **spec.kwargs)

    def temporaries(self, spec):
        """The input spread out by the stride and padded by the dilated kernel: what a
        direct conv_transpose correlates."""
        spread = [(size - 1) * s + 1 + 2 * (k - 1) * d
                  for size, k, s, d, _ in _transpose_axes(spec)]
        return {"spread copy": nbytes(list(spec.shapes[0][:2]) + spread,
                                      float_result(spec.dtypes, spec.dtypes))}

    def oracle(self, spec, arrays):
        return ref.conv_transpose(*arrays, **spec.kwargs)

    def oracle_at(self, spec, arrays, index):
        x, w, *bias = arrays
        return ref.conv_transpose_at(x, w, bias[0] if bias else None, index, **spec.kwargs)

    def terms(self, spec):
        # per axis, the most taps r that reach one output q (i*s + r*d = q + padding)
        out = self.output_shape(spec)[2:]
        most = 1
        for q_count, (size, k, s, d, pa) in zip(out, _transpose_axes(spec)):
            most *= max(sum(1 for r in range(k) if (q + pa - r * d) % s == 0
                            and 0 <= (q + pa - r * d) // s < size) for q in range(q_count))
        cg = spec.shapes[0][1] // spec.kwargs["groups"]
        return max(cg * most, 1) + (len(spec.shapes) == 3)

    def work(self, spec):
        out = self.output_shape(spec)
        loops = spec.shapes[0][1] // spec.kwargs["groups"] * math.prod(spec.shapes[1][2:])
        return _units(math.prod(out) * (_US["transpose_output"] + _US["transpose_term"] * loops))

    def border_zones(self, spec):
        zones = [(0, 0), (0, 0)]
        for q_count, (size, k, s, d, pa) in zip(self.output_shape(spec)[2:], _transpose_axes(spec)):
            # output q misses taps at the low end when q + pa - (k-1)*d < 0, at the high end
            # when (q + pa) / s > size - 1
            low = sum(1 for q in range(q_count) if q + pa - (k - 1) * d < 0)
            high = sum(1 for q in range(q_count) if q + pa > (size - 1) * s)
            zones.append((low, high))
        return tuple(zones)


@dataclass(frozen=True)
class ConvGrad(LayerOp):
    """conv_grad_input(dy, w, input_shape, ...) / conv_grad_weight(x, dy, weight_shape, ...)."""

    shape_param: str = "input_shape"

    def normalize(self, shapes, dtypes, kwargs) -> dict:
        params = self.parameters(kwargs)
        if len(shapes) != 2 or len(dtypes) != 2:
            raise ValueError(f"{self.name} takes arrays {self.arrays}, got {len(shapes)} shapes")
        _check_arrays(self.arrays, shapes, dtypes)
        params[self.shape_param] = _shape_param(params[self.shape_param], self.shape_param)
        params = self._normalize_geometry(params)
        layer = self._validate(shapes, params)
        dy_shape = shapes[0] if self.name == "conv_grad_input" else shapes[1]
        if tuple(dy_shape) != layer.out_shape:
            raise ValueError(f"dy must have the shape of conv's output, {layer.out_shape}, "
                             f"got {tuple(dy_shape)}")
        return self._finish(params, dtypes)

    def _validate(self, shapes, params):
        geometry = {k: params[k] for k in _GEOMETRY}
        if self.name == "conv_grad_input":
            return ref.validate(params["input_shape"], shapes[1], x_name="input_shape",
                                **geometry)
        return ref.validate(shapes[0], params["weight_shape"], w_name="weight_shape", **geometry)

    def layer(self, spec):
        return self._validate(spec.shapes, spec.kwargs)

    def _shape_params(self, spec):
        letter = "x" if self.name == "conv_grad_input" else "w"
        return [f"{letter}{shape_str(spec.kwargs[self.shape_param])}"]

    def output_shape(self, spec):
        return tuple(spec.kwargs[self.shape_param])

    def oracle(self, spec, arrays):
        fn = ref.conv_grad_input if self.name == "conv_grad_input" else ref.conv_grad_weight
        return fn(*arrays, **spec.kwargs)

    def oracle_at(self, spec, arrays, index):
        kw = spec.kwargs
        shape = kw.pop(self.shape_param)
        fn = ref.conv_grad_input_at if self.name == "conv_grad_input" else ref.conv_grad_weight_at
        return fn(*arrays, shape, index, **kw)

    def terms(self, spec):
        return _grad_terms(spec)

    def preferred_first(self, spec, library: str):
        """conv_grad_weight on CPU arrays, stride 1, measured in one run against conv_torch
        and im2col_numpy (results/README.md): tapgemm_numpy first for at most 4 groups with
        one output channel per group, or one input channel and at most 8 outputs per group
        (1.5-12x torch's time saved); im2col_numpy first for one group of one input channel
        and more than 8 outputs (2-4x faster than torch's there). Elsewhere (3 -> 3
        channels, depthwise over 32 channels) torch's kernels win: no rule."""
        if self.name != "conv_grad_weight" or library != "numpy":
            return None
        layer = self.layer(spec)
        if any(s != 1 for s in layer.stride):
            return None
        cg, og, groups = layer.in_per_group, layer.out_per_group, layer.groups
        shape = f"stride 1, {groups} group(s) of {cg} input and {og} output channel(s)"
        if groups <= 4 and (og == 1 or (cg == 1 and og <= 8)):
            return "tapgemm_numpy", (f"{shape}: one output channel per group, or one input "
                                     "channel and at most 8 outputs, in at most 4 groups")
        if groups == 1 and cg == 1:
            return "im2col_numpy", f"{shape}: one input channel, more than 8 outputs"
        return None

    def work(self, spec):
        layer = self.layer(spec)
        if self.name == "conv_grad_input":
            loops = math.prod(layer.out_shape) * layer.in_per_group * math.prod(layer.kernel)
            return _units(loops * _US["grad_input_term"])
        padded = layer.batch * layer.in_channels * math.prod(
            n + lo + hi for n, (lo, hi) in zip(layer.in_spatial, layer.pads))
        outputs = math.prod(spec.kwargs["weight_shape"])
        per_output = _US["grad_weight_output"] + _US["grad_weight_term"] * self.terms(spec)
        return _units(outputs * per_output + padded * _US["pad"])

    def border_zones(self, spec):
        layer = self.layer(spec)
        zones = [(0, 0), (0, 0)]
        axes = zip(layer.out_spatial, layer.kernel, layer.stride, layer.dilation, layer.pads,
                   layer.in_spatial)
        for out, k, s, d, (lo, hi), size in axes:
            if self.name == "conv_grad_weight":
                # tap r reads the low border when r*d - lo < 0 (at p = 0), the high one when
                # (out-1)*s + r*d - lo >= size
                zones.append((sum(1 for r in range(k) if r * d - lo < 0),
                              sum(1 for r in range(k) if (out - 1) * s + r * d - lo >= size)))
            else:
                # input samples whose sum differs from the interior pattern: those that a tap
                # misses near the ends, plus those the border folds back onto (wrap folds the
                # low border onto the high end and the other way round)
                near = (k - 1) * d + s
                reach_lo, reach_hi = (max(lo, hi),) * 2 if layer.border == "wrap" else (lo, hi)
                low, high = min(size, near + reach_lo), min(size, near + reach_hi)
                zones.append((low, high))
        return tuple(zones)


@functools.lru_cache(maxsize=256)
def _grad_terms(spec) -> int:
    """K of the error bound: the most products summed into one gradient element."""
    op = spec.operation
    layer = op.layer(spec)
    if op.name == "conv_grad_weight":
        return layer.batch * math.prod(layer.out_spatial)
    # conv_grad_input: per axis the most (p, r) pairs that land on one input sample
    most = 1
    for out, k, s, d, (lo, _), size in zip(layer.out_spatial, layer.kernel, layer.stride,
                                           layer.dilation, layer.pads, layer.in_spatial):
        counts = [0] * size
        for row in _axis_taps(out, k, s, d, lo, size, layer.border):
            for j in row:
                if j is not None:
                    counts[j] += 1
        most *= max(max(counts), 1)
    return layer.out_per_group * most


@dataclass(frozen=True)
class ConvGradBias(LayerOp):
    """``conv_grad_bias(dy)``: dy summed over N and the spatial axes."""

    def normalize(self, shapes, dtypes, kwargs) -> dict:
        params = self.parameters(kwargs)
        if len(shapes) != 1 or len(dtypes) != 1:
            raise ValueError(f"conv_grad_bias takes one array dy, got {len(shapes)} shapes")
        if not 3 <= len(shapes[0]) <= 5:
            raise ValueError(f"dy must have 3 to 5 dimensions (N, O, *spatial), got shape "
                             f"{tuple(shapes[0])}")
        _check_arrays(self.arrays, shapes, dtypes)
        return params

    def output_shape(self, spec):
        return (spec.shapes[0][1],)

    def temporaries(self, spec):
        return {}

    def oracle(self, spec, arrays):
        return ref.conv_grad_bias(*arrays)

    def oracle_at(self, spec, arrays, index):
        (o,) = index
        return ref.conv_grad_bias(arrays[0][:, o:o + 1])[0]

    def terms(self, spec):
        shape = spec.shapes[0]
        return shape[0] * math.prod(shape[2:])

    def work(self, spec):
        return _units(math.prod(spec.shapes[0]) * _US["grad_bias"])


# ---------------------------------------------------------------------------------------
# conv_relu: conv then ReLU, the fused conv + bias + activation of GPU libraries
# (cudnnConvolutionBiasActivationForward). It has no public function.
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConvRelu(Conv):
    """``conv_relu(x, w, bias=None, *, ...)`` = ``max(conv(x, w, bias, ...), 0)``.

    ReLU is 1-Lipschitz, so conv's error bound holds unchanged, and its scale
    conv(|x|, |w|) >= 0 is what this oracle gives on absolute values."""

    def oracle(self, spec, arrays):
        return np.maximum(super().oracle(spec, arrays), 0.0)

    def oracle_at(self, spec, arrays, index):
        return float(np.maximum(super().oracle_at(spec, arrays, index), 0.0))


# ---------------------------------------------------------------------------------------
# The records
# ---------------------------------------------------------------------------------------

_CONV_DEFAULTS = (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1),
                  ("border", "constant"), ("cval", 0.0))
_TRANSPOSE_DEFAULTS = (("stride", 1), ("padding", 0), ("output_padding", 0), ("dilation", 1),
                       ("groups", 1))

# Every layer op runs on these; a module serving several ops defines one function per op.
_OURS = {"im2col_numpy": "candidates.conv.im2col_numpy",
         "conv_torch": "candidates.conv.conv_torch"}
# cuDNN through torch, three settings (plain, autotuned, TF32 allowed)
_CUDNN = {"cudnn_torch": "candidates.conv.cudnn_torch",
          "cudnn_autotune_torch": "candidates.conv.cudnn_autotune_torch",
          "cudnn_tf32_torch": "candidates.conv.cudnn_tf32_torch"}
_PEERS = frozenset({"conv_torch", "cudnn_torch"})
# "torch" means tensors on a GPU (CPU tensors get the numpy choice)
_PREFERENCE = {"numpy": ("conv_torch", "im2col_numpy"),
               "torch": ("cudnn_autotune_torch", "cudnn_torch", "conv_torch", "im2col_numpy")}

OPS = {
    "conv": Conv(
        "conv", ("x", "w", "bias"), _CONV_DEFAULTS,
        candidates={**_OURS, "per_channel_opencv": "candidates.conv.per_channel_opencv",
                    "winograd_numpy": "candidates.conv.winograd_numpy", **_CUDNN,
                    "implicit_gemm_triton": "candidates.conv.implicit_gemm_triton"},
        peers=_PEERS,
        preference=_PREFERENCE,
        suites={"small": cases.small_conv_cases, "quick": cases.quick_conv_cases,
                "layers": cases.layer_cases, "seed": cases.seed_conv_cases,
                "gpu": cases.gpu_layer_cases,
                "bfloat16": cases.bfloat16_cases},
        asv=Asv(time=(("quick", 1), ("layers", 1)), peakmem=1),
    ),
    "conv_relu": ConvRelu(
        "conv_relu", ("x", "w", "bias"), _CONV_DEFAULTS,
        candidates={"conv_torch": "candidates.conv.conv_torch", **_CUDNN,
                    "implicit_gemm_triton": "candidates.conv.implicit_gemm_triton"},
        peers=_PEERS,
        suites={"small": cases.small_conv_relu_cases, "gpu": cases.gpu_layer_cases,
                "bfloat16": cases.bfloat16_cases},
    ),
    "conv_transpose": ConvTranspose(
        "conv_transpose", ("x", "w", "bias"), _TRANSPOSE_DEFAULTS,
        candidates={**_OURS, **_CUDNN},
        peers=_PEERS,
        preference=_PREFERENCE,
        suites={"small": cases.small_transpose_cases,
                "bfloat16": cases.bfloat16_cases},
    ),
    "conv_grad_input": ConvGrad(
        "conv_grad_input", ("dy", "w"), (("input_shape", REQUIRED),) + _CONV_DEFAULTS,
        candidates={**_OURS, **_CUDNN},
        peers=_PEERS,
        preference=_PREFERENCE,
        suites={"small": cases.small_grad_cases, "layers": cases.layer_cases,
                "seed": cases.mnist_cases, "gpu": cases.gpu_layer_cases,
                "bfloat16": cases.bfloat16_cases},
        asv=Asv(time=(("layers", 1),)),
    ),
    "conv_grad_weight": ConvGrad(
        "conv_grad_weight", ("x", "dy"), (("weight_shape", REQUIRED),) + _CONV_DEFAULTS,
        shape_param="weight_shape",
        candidates={**_OURS, "tapgemm_numpy": "candidates.conv.tapgemm_numpy", **_CUDNN},
        peers=_PEERS,
        preference=_PREFERENCE,
        suites={"small": cases.small_grad_cases, "layers": cases.layer_cases,
                "seed": cases.seed_grad_weight_cases, "gpu": cases.gpu_layer_cases,
                "bfloat16": cases.bfloat16_cases},
        asv=Asv(time=(("layers", 1),)),
    ),
    "conv_grad_bias": ConvGradBias(
        "conv_grad_bias", ("dy",), (),
        candidates={**_OURS, "cudnn_torch": "candidates.conv.cudnn_torch"},
        peers=_PEERS,
        preference={"numpy": _PREFERENCE["numpy"],
                    "torch": ("cudnn_torch", "conv_torch", "im2col_numpy")},
        suites={"small": cases.small_bias_cases,
                "bfloat16": cases.bfloat16_cases},
    ),
}
