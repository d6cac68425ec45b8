"""The op table: one record per operation, holding everything the project knows of it.

A record is the op's ``Operation`` instance. Each family module (correlate.py, conv.py,
pool.py, gaussian.py) writes its records in an ``OPS`` dict, merged by ``all_ops()``.
The tables other modules read (registry.CANDIDATES, PEERS and REUSED, choose.RULES,
cases.all_suites(), asv_support's selections) are derived from the records on each access,
so no module special-cases ops and a new op edits no table.

============  ========================================================================
field         what it holds
============  ========================================================================
name          the op's name: ``convbench.<name>`` when it has a public function
arrays        the array arguments, positional, in order
defaults      (keyword, default) pairs in signature order; ``REQUIRED``: no default
candidates    candidate name -> module path, ours and peers (strings: imported lazily)
peers         the candidates that wrap another library's routine as people call it
reuses        the op whose candidates this op also runs (through ``correlate_call``)
preference    array library -> candidate names, where no measured choice table applies
suites        suite name -> case builder (functions of convbench/cases/<family>.py)
asv           ``Asv``: which cases of which suites the asv suites time and measure
============  ========================================================================

Methods give the maths: ``normalize`` (validation), ``output_shape``, ``oracle`` and
``oracle_at`` (refimpl's float64 oracle, whole or at one index), ``terms`` and
``error_scale`` (the error model), ``work`` (the oracle's cost), ``temporaries``.
Hooks that only some ops have are protocols, not stubs: ``Bordered`` (border_zones: where
verification samples), ``Normwise`` (fft_sizes: the 'fft' and 'iir' error models) and
``ThroughCorrelate`` (as_correlate, correlate_call: an op whose record ``reuses``
correlate's candidates), ``ShapeRule`` (preferred_first: a candidate the default choice
tries first where a stated rule of the shapes applies) and ``SeveralOutputs`` (an op whose candidates return a tuple:
batch_norm's output and new running statistics).

Adding an op: its oracle (refimpl/<family>.py), its record (here, in the family's
``OPS``), its candidates (candidates/<family>/, named in the record), its tests; and a
public function in convbench/api.py whose signature is the record's (tests/test_records.py).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

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


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


# The default of a parameter that has none (sigma, kernel_size, input_shape): normalize
# passes None for it, which the op's validation refuses by name.
REQUIRED = _Required()


@dataclass(frozen=True)
class Asv:
    """What the asv suites measure of an op: per suite, how many of its first cases or
    which workload names to time (cases tagged "large" are left out), and how many of the
    timed cases also get a peak-memory benchmark."""

    time: tuple[tuple[str, int | tuple[str, ...]], ...] = ()
    peakmem: int = 0


@dataclass(frozen=True)
class Operation:
    """An op's record: its signature and what the project holds of it (module docstring);
    subclasses give the maths."""

    name: str
    arrays: tuple[str, ...]
    defaults: tuple[tuple[str, object], ...]
    candidates: Mapping[str, str] = field(default_factory=dict, compare=False)
    peers: frozenset[str] = frozenset()
    reuses: str | None = None
    preference: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    suites: Mapping[str, Callable] = field(default_factory=dict, compare=False)
    asv: Asv = Asv()

    # -- signature -------------------------------------------------------------------
    def parameters(self, kwargs) -> dict:
        """The defaults overlaid with ``kwargs`` (unknown keywords refused by name)."""
        accepted = [k for k, _ in self.defaults]
        unknown = set(kwargs) - set(accepted)
        if unknown:
            raise TypeError(f"{self.name}() got unexpected keyword argument(s) {sorted(unknown)}; "
                            f"accepted: {accepted}")
        params = {**dict(self.defaults), **kwargs}
        return {k: None if v is REQUIRED else v for k, v in params.items()}

    def normalize(self, shapes, dtypes, kwargs) -> dict:
        params = self.parameters(kwargs)
        if len(shapes) != len(self.arrays) or len(dtypes) != len(shapes):
            raise ValueError(f"{self.name} takes arrays {self.arrays}, got {len(shapes)} shapes")
        return params

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

    def work(self, spec) -> float:
        """Multiply-adds of the direct algorithm (for the cost of the oracle, GFLOP)."""
        return float(np.prod(self.output_shape(spec))) * self.terms(spec)


@runtime_checkable
class Bordered(Protocol):
    """An op whose outputs near the ends of an axis read padding (or fewer inputs)."""

    def border_zones(self, spec) -> tuple[tuple[int, int], ...]:
        """Per output axis: how many leading and trailing positions read the border."""


@runtime_checkable
class Normwise(Protocol):
    """An op with FFT (or recursive) candidates: the 'fft' and 'iir' error models need the
    padded input's size and the transform length."""

    def fft_sizes(self, spec) -> tuple[int, int]:
        """(samples of the padded input, FFT length)."""


@runtime_checkable
class ThroughCorrelate(Protocol):
    """An op whose record ``reuses`` correlate's candidates: how its call and its spec
    read as correlate's."""

    def as_correlate(self, spec):
        """The spec a reused correlate candidate sees."""

    def correlate_call(self, arrays, kwargs):
        """(arrays, kwargs) of the correlate call that computes this op."""


@runtime_checkable
class ShapeRule(Protocol):
    """An op without measured-table rows whose default choice on CPU arrays tries one
    candidate first where a stated rule of the call's shapes says it wins."""

    def preferred_first(self, spec, library: str) -> tuple[str, str] | None:
        """(candidate name, the rule in words) where the rule applies, else None."""


@runtime_checkable
class SeveralOutputs(Protocol):
    """An op whose candidates return a tuple of arrays, one per name in ``outputs``
    (``output_shape`` and ``result_dtype`` describe the first). Verification compares each
    output under its own dtype's bound; large first outputs at sampled points."""

    outputs: tuple[str, ...]

    def output_shapes(self, spec) -> tuple[tuple[int, ...], ...]:
        """The shape of each output."""

    def output_dtypes(self, spec) -> tuple[str, ...]:
        """The dtype of each output."""

    def reference_outputs(self, spec, arrays, points=None):
        """Per output, (oracle values, error scale): the first output's at ``points``
        (whole when None), the others whole."""


class Derived(Mapping):
    """A read-only table computed from the records on every access: it is never stale
    (a test that replaces a record sees it everywhere) and a new op edits no table."""

    def __init__(self, derive: Callable[[], dict]):
        self._derive = derive

    def __getitem__(self, key):
        return self._derive()[key]

    def __iter__(self):
        return iter(self._derive())

    def __len__(self) -> int:
        return len(self._derive())

    def __repr__(self) -> str:
        return repr(self._derive())


class PerOp(Derived):
    """A derived table keyed by op: ``entry(record)`` for each op where it is not empty
    (one op's entry is read from its record alone)."""

    def __init__(self, entry: Callable[["Operation"], object]):
        super().__init__(lambda: {op: v for op, r in all_ops().items() if (v := entry(r))})
        self._entry = entry

    def __getitem__(self, op):
        record = all_ops().get(op) if isinstance(op, str) else None
        value = self._entry(record) if record is not None else None
        if not value:
            raise KeyError(op)
        return value


def _fmt(value) -> str:
    if isinstance(value, tuple):
        return ",".join(_fmt(v) for v in value)
    return str(value)


def _table() -> tuple[dict[str, Operation], dict[str, str]]:
    # Explicit: each family module lists its ops; a new family is a new name here.
    from convbench.ops import batch_norm, conv, correlate, gaussian, pool

    table, families = {}, {}
    for family in (correlate, conv, pool, gaussian, batch_norm):
        table.update(family.OPS)
        families.update(dict.fromkeys(family.OPS, family.__name__.rsplit(".", 1)[-1]))
    return table, families


_OPS: dict[str, Operation] = {}
_FAMILIES: dict[str, str] = {}


def all_ops() -> dict[str, Operation]:
    if not _OPS:
        table, families = _table()
        _FAMILIES.update(families)
        _OPS.update(table)
    return _OPS


def family(op: str) -> str:
    """The family module (convbench/ops/<family>.py) that defines ``op``."""
    all_ops()
    return _FAMILIES.get(op, op)


def get_op(name: str) -> Operation:
    ops = all_ops()
    try:
        return ops[name]
    except KeyError:
        raise ValueError(f"unknown op {name!r}; accepted: {', '.join(ops)}") from None
