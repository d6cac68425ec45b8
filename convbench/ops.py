"""The op table: for every operation, its signature, oracle, geometry and error terms.

One explicit table (``OPS``); every other module asks it instead of special-casing ops.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from convbench.dtypes import result_dtype
from refimpl import correlate as ref_correlate
from refimpl.geometry import convolve_as_correlate_origin
from refimpl.pad import canonical_border

_SHORT_DTYPE = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64",
                "uint8": "u8", "uint16": "u16", "int16": "i16", "int32": "i32",
                "complex64": "c64", "complex128": "c128"}


def shape_str(shape) -> str:
    return "x".join(str(n) for n in shape)


def short_dtype(name: str) -> str:
    return _SHORT_DTYPE.get(name, name)


@dataclass(frozen=True)
class Operation:
    """Behaviour common to every op; subclasses fill in the op-specific parts."""

    name: str
    arrays: tuple[str, ...]
    defaults: tuple[tuple[str, object], ...]

    # -- signature -------------------------------------------------------------------
    def normalize(self, shapes, dtypes, kwargs) -> dict:
        unknown = set(kwargs) - {k for k, _ in self.defaults}
        if unknown:
            raise TypeError(f"{self.name}() got unexpected keyword argument(s) {sorted(unknown)}; "
                            f"accepted: {[k for k, _ in self.defaults]}")
        if len(shapes) != len(self.arrays) or len(dtypes) != len(shapes):
            raise ValueError(f"{self.name} takes arrays {self.arrays}, got {len(shapes)} shapes")
        return {**dict(self.defaults), **kwargs}

    def call(self, fn, arrays, spec):
        """Call ``fn`` with the op's signature: arrays positionally, parameters by keyword
        (parameters left at None are not passed, so simple functions need not take them)."""
        kwargs = {k: v for k, v in spec.params if v is not None}
        return fn(*arrays, **kwargs)

    def spec_id(self, spec) -> str:
        parts = [self.name] + [f"{a}{shape_str(s)}" for a, s in zip(self.arrays, spec.shapes)]
        defaults = dict(self.defaults)
        for key, value in spec.params:
            if value != defaults.get(key) and key != "border":
                parts.append(f"{key}={_fmt(value)}")
        parts.append(spec.kwargs.get("border", ""))
        dtypes = sorted(set(spec.dtypes), key=spec.dtypes.index)
        parts.append("-".join(short_dtype(d) for d in dtypes))
        return "-".join(p for p in parts if p)

    def result_dtype(self, spec) -> np.dtype:
        out = spec.kwargs.get("out_dtype")
        return np.dtype(out) if out is not None else result_dtype(*spec.dtypes[:2])

    # -- to be provided per op ------------------------------------------------------
    def output_shape(self, spec) -> tuple[int, ...]:
        raise NotImplementedError

    def oracle(self, spec, arrays) -> np.ndarray:
        """The whole float64 output (no out_dtype rounding: verification applies that)."""
        raise NotImplementedError

    def oracle_at(self, spec, arrays, index) -> float:
        raise NotImplementedError

    def terms(self, spec) -> int:
        """How many products are summed into one output element (K of the error bound)."""
        raise NotImplementedError

    def border_zones(self, spec) -> tuple[tuple[int, int], ...]:
        """Per output axis: how many leading and trailing positions read the border."""
        raise NotImplementedError

    def fft_sizes(self, spec) -> tuple[int, int]:
        """(samples of the padded input, FFT length) for the 'fft' error model."""
        raise NotImplementedError

    def as_correlate(self, spec):
        """The spec a reused correlate candidate sees (identity for other ops)."""
        return spec

    def work(self, spec) -> float:
        """Multiply-adds of the direct algorithm (for the cost of the oracle, GFLOP)."""
        return float(np.prod(self.output_shape(spec))) * self.terms(spec)


def _fmt(value) -> str:
    if isinstance(value, tuple):
        return ",".join(_fmt(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class ImageFilter(Operation):
    """correlate / convolve: ``f(x, w, *, border, cval, padding, origin, out_dtype)``."""

    convolve: bool = False

    def normalize(self, shapes, dtypes, kwargs) -> dict:
        params = super().normalize(shapes, dtypes, kwargs)
        params["border"] = canonical_border(params["border"])
        origin = params["origin"]
        params["origin"] = origin if isinstance(origin, int) else tuple(int(o) for o in origin)
        if isinstance(params["origin"], tuple) and len(set(params["origin"])) == 1:
            params["origin"] = params["origin"][0]
        params["cval"] = float(params["cval"]) if np.isreal(params["cval"]) else params["cval"]
        if params["out_dtype"] is not None:
            out = np.dtype(params["out_dtype"])
            if out.kind not in "uif":
                raise TypeError(f"out_dtype must be an integer or floating dtype, got {out}")
            params["out_dtype"] = out.name
        self.validate(shapes, dtypes, params)
        return params

    def validate(self, shapes, dtypes, params):
        return ref_correlate.validate(
            shapes[0], shapes[1], dtypes[0] if dtypes[0] != "bfloat16" else "float32",
            dtypes[1] if dtypes[1] != "bfloat16" else "float32",
            border=params["border"], cval=params["cval"], padding=params["padding"],
            origin=params["origin"], convolve=self.convolve)

    def pads(self, spec):
        return self.validate(spec.shapes, spec.dtypes, spec.kwargs)[1]

    def output_shape(self, spec):
        return ref_correlate.output_shape(spec.shapes[0], self.pads(spec), spec.shapes[1])

    def _oracle_kwargs(self, spec):
        kw = spec.kwargs
        return dict(border=kw["border"], cval=kw["cval"], padding=kw["padding"], origin=kw["origin"])

    def oracle(self, spec, arrays):
        fn = ref_correlate.convolve if self.convolve else ref_correlate.correlate
        return fn(*arrays, **self._oracle_kwargs(spec))

    def oracle_at(self, spec, arrays, index):
        return ref_correlate.correlate_at(*arrays, index, convolve=self.convolve,
                                          **self._oracle_kwargs(spec))

    def terms(self, spec):
        return math.prod(spec.shapes[1])

    def border_zones(self, spec):
        return self.pads(spec)

    def fft_sizes(self, spec):
        padded = [n + lo + hi for n, (lo, hi) in zip(spec.shapes[0], self.pads(spec))]
        return math.prod(padded), math.prod(p + k - 1 for p, k in zip(padded, spec.shapes[1]))

    def as_correlate(self, spec):
        if not self.convolve:
            return spec
        kw = spec.kwargs
        origin = convolve_as_correlate_origin(spec.shapes[1], kw["padding"], kw["origin"])
        return spec.__class__.make("correlate", spec.shapes, spec.dtypes, **{**kw, "origin": origin})


_IMAGE_DEFAULTS = (("border", "constant"), ("cval", 0.0), ("padding", "same"), ("origin", 0),
                   ("out_dtype", None))

OPS = {
    "correlate": ImageFilter("correlate", ("x", "w"), _IMAGE_DEFAULTS),
    "convolve": ImageFilter("convolve", ("x", "w"), _IMAGE_DEFAULTS, convolve=True),
}


def get_op(name: str) -> Operation:
    try:
        return OPS[name]
    except KeyError:
        raise ValueError(f"unknown op {name!r}; accepted: {', '.join(OPS)}") from None
