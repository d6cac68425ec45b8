"""The op table: for every operation, its signature, oracle, geometry and error terms.

The base class is here; each family (correlate.py, conv.py, pool.py) defines its ops and
an ``OPS`` dict, merged by ``all_ops()``. Every other module asks the table instead of
special-casing ops.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from convbench.dtypes import result_dtype

_SHORT_DTYPE = {"float16": "f16", "bfloat16": "bf16", "float32": "f32", "float64": "f64",
                "uint8": "u8", "uint16": "u16", "uint32": "u32", "int8": "i8", "int16": "i16",
                "int32": "i32", "int64": "i64",
                "complex64": "c64", "complex128": "c128"}


# out_dtype of the image-form ops: what their candidates round and saturate into.
OUT_DTYPES = ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64",
              "float16", "float32", "float64")


def normalize_out_dtype(value, op: str) -> str | None:
    """None, or the name of an accepted out_dtype given as a numpy dtype, a torch dtype
    (torch.float32 is numpy's float32) or a name; TypeError naming out_dtype otherwise."""
    if value is None:
        return None
    name = _dtype_name(value)
    if name not in OUT_DTYPES:
        hint = " (numpy has no bfloat16: pass a bfloat16 tensor, or out_dtype=None)" \
            if name == "bfloat16" else ""
        raise TypeError(f"{op}() cannot produce out_dtype={value!r}{hint}; accepted: None, "
                        f"{', '.join(OUT_DTYPES)} (numpy or torch dtypes, or their names)")
    return name


def _dtype_name(value) -> str | None:
    if type(value).__module__.split(".")[0] == "torch":      # torch.float32 -> 'float32'
        return str(value).replace("torch.", "")
    if isinstance(value, str) and value == "bfloat16":
        return value
    try:
        return np.dtype(value).name
    except (TypeError, ValueError):
        return None


def check_cval_fits(cval: float, dtypes) -> None:
    """A cval that a floating dtype the border values pass through (the result's, a
    floating out_dtype) cannot hold would fill the border with Inf. None is skipped."""
    for dtype in dtypes:
        if dtype is None:
            continue
        dtype = np.dtype("float32" if dtype == "bfloat16" else dtype)
        if dtype.kind in "fc" and abs(cval) > np.finfo(dtype).max:
            raise ValueError(f"cval={cval!r} does not fit the result dtype {dtype} (largest "
                             f"finite value {float(np.finfo(dtype).max):g}); use a smaller "
                             "cval or a wider dtype")


def nbytes(shape, dtype) -> int:
    itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    return math.prod(int(n) for n in shape) * itemsize


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

    # -- memory ----------------------------------------------------------------------
    def memory_parts(self, spec) -> dict[str, int]:
        """Bytes one call holds at once, from the shapes alone: its arrays, its result and
        the temporaries of a straightforward algorithm (``temporaries``)."""
        parts = {name: nbytes(shape, dtype)
                 for name, shape, dtype in zip(self.arrays, spec.shapes, spec.dtypes)}
        try:
            out_dtype = self.result_dtype(spec)
        except TypeError:                       # bfloat16 tensors: numpy has no such dtype
            out_dtype = "bfloat16"
        parts["output"] = nbytes(self.output_shape(spec), out_dtype)
        parts.update(self.temporaries(spec))
        return parts

    def temporaries(self, spec) -> dict[str, int]:
        return {}

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
