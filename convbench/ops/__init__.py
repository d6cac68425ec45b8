"""The op table: for every operation, its signature, oracle, geometry and error terms.

The base class is here; each family (correlate.py, conv.py, pool.py) defines its ops and
an ``OPS`` dict, merged by ``all_ops()``. Every other module asks the table instead of
special-casing ops.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convbench.dtypes import result_dtype

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

    def error_scale(self, spec, arrays, points=None) -> np.ndarray:
        """The scale of the 'direct' error bound: the op applied to absolute values
        (|x| (*) |w| for a sum of products, with |cval|), whole or at ``points``.
        Ops where that is not a bound (max_pool_grad, odd-p lp_pool) override this."""
        absolute = tuple(np.abs(np.asarray(a, dtype=np.float64)) if np.asarray(a).dtype.kind in "iuf"
                         else np.abs(np.asarray(a)) for a in arrays)
        if "cval" in spec.kwargs:
            spec = spec.replace(cval=abs(spec.kwargs["cval"]))
        if points is None:
            return self.oracle(spec, absolute)
        return np.array([self.oracle_at(spec, absolute, i) for i in zip(*points)])

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

    def correlate_call(self, arrays, kwargs):
        """(arrays, kwargs) of the correlate call that computes this op, for ops whose
        registry entry reuses the correlate candidates (see registry.REUSED)."""
        raise NotImplementedError(f"{self.name} is not computed through correlate")

    def work(self, spec) -> float:
        """Multiply-adds of the direct algorithm (for the cost of the oracle, GFLOP)."""
        return float(np.prod(self.output_shape(spec))) * self.terms(spec)


def _fmt(value) -> str:
    if isinstance(value, tuple):
        return ",".join(_fmt(v) for v in value)
    return str(value)


def _table() -> dict[str, Operation]:
    # Explicit: each family module lists its ops; a new family is a new line here.
    from convbench.ops import conv, correlate, gaussian, pool

    table = {}
    for family in (correlate, conv, pool, gaussian):
        table.update(family.OPS)
    return table


_OPS: dict[str, Operation] = {}


def all_ops() -> dict[str, Operation]:
    if not _OPS:
        _OPS.update(_table())
    return _OPS


def get_op(name: str) -> Operation:
    ops = all_ops()
    try:
        return ops[name]
    except KeyError:
        raise ValueError(f"unknown op {name!r}; accepted: {', '.join(ops)}") from None
