"""The default choice of algorithm when the caller gives no ``algorithm=``.

The cost model is a measured table, not a formula fitted once somewhere else:

1. A call is described by its features: op, rank, pixels (output size), kernel taps K
   and shape, whether the kernel is separable (numerical rank 1, decided on its values
   by the same rank test separable_numpy uses), result dtype class (integer out_dtype,
   float16, float32, float64) and border.
2. ``convbench tune`` times every verified candidate on the image-filtering suites:
   ``images`` (kernel sizes 3 to 63 on 1024x1024 images, random and Gaussian kernels,
   every border, 1-D kernels, uint8, 512x512 and 4096x4096), ``seed`` (the workloads the
   project started from: a 15x15 kernel on 1000x1000 and 10000x10000 images, 3x3 float64
   filtering, 3x3 filters on RGB photographs) and ``quick`` (a few real workloads). It
   stores, per case, its features and the candidates ranked by median time, except that
   the fastest peer goes first unless one of ours is at least 25% faster by the median
   and by the fastest sample (tune.PEER_MARGIN: a tie within the noise of a shared
   machine must not make the default slower than the peer). The table shipped in
   ``convbench/choices.json`` was measured on this project's 2-core machine; a table
   written by ``convbench tune`` to the user's cache directory replaces it.
3. The row nearest to the call gives the ranking. Distance: |log2 pixels| + 2 |log2 K|
   differences, plus fixed penalties for a different dtype class (8), separability (8),
   rank (16), kernel aspect (4: 1xk vs kxk) and border (1). The first candidate of that
   ranking that is available and supports the call wins.
4. Ops without table rows use ``RULES``: each op record's ``preference``, a short list
   per array library (convbench.ops); an op with a ``ShapeRule`` (conv_grad_weight) puts
   the candidate its stated rule names first where the rule applies.

A wrong result is never chosen: only candidates that passed verification on a case are
ranked, and every candidate is verified on the small cases by the test suite.
"""
from __future__ import annotations

import functools
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np

from convbench import arrays as xp
from convbench import values
from convbench.ops import Derived, ShapeRule, all_ops

PACKAGED_TABLE = Path(__file__).with_name("choices.json")
SCHEMA = "convbench-choices"


class _Rules(Derived):
    """(op, caller's array library) -> candidates in order of preference, for ops (or calls)
    the measured table does not cover: the op record's ``preference`` ("torch" means
    tensors on a GPU: CPU tensors get the numpy choice), looked up on each access."""

    def __getitem__(self, key):
        op, library = key if isinstance(key, tuple) and len(key) == 2 else (None, None)
        record = all_ops().get(op)
        if record is None or library not in record.preference:
            raise KeyError(key)
        return tuple(record.preference[library])


RULES = _Rules(lambda: {(op, library): tuple(names) for op, r in all_ops().items()
                        for library, names in r.preference.items()})

# ops whose ranking reads the kernel's values (its separability, in ``features``)
KERNEL_VALUE_OPS = frozenset({"correlate", "convolve"})

DTYPE_PENALTY, SEPARABLE_PENALTY, RANK_PENALTY, ASPECT_PENALTY, BORDER_PENALTY = 8, 8, 16, 4, 1


def user_table_path() -> Path:
    """Where ``convbench tune`` writes: $CONVBENCH_CACHE, else the XDG cache directory."""
    root = os.environ.get("CONVBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "convbench")
    return Path(root) / "choices.json"


# What ranking() and distance() read from each row, and the types they need.
ROW_TYPES = {"op": str, "rank": int, "pixels": (int, float), "taps": (int, float),
             "kernel": list, "separable": bool, "dtype": str, "border": str, "ranking": list}


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> list[dict] | None:
    """The rows of a valid table; None (after one warning per file version, the result
    being cached by modification time) for an unreadable or invalid one."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        problem = _table_problem(doc)
    except (OSError, ValueError) as exc:   # JSON and UTF-8 decoding errors are ValueErrors
        problem = f"cannot be read ({type(exc).__name__}: {exc})"
    if problem:
        warnings.warn(f"ignoring the choice table {path}: {problem}; the default choice uses "
                      f"the packaged table (`convbench tune` writes a new one)", stacklevel=4)
        return None
    return doc["rows"]


def _table_problem(doc) -> str | None:
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        return f"not a {SCHEMA} document"
    if not isinstance(doc.get("rows"), list):
        return "'rows' is not a list"
    for i, row in enumerate(doc["rows"]):
        if not isinstance(row, dict):
            return f"row {i} is not an object"
        missing = [key for key in ROW_TYPES if key not in row]
        if missing:
            return f"row {i} lacks {missing}"
        for key, types in ROW_TYPES.items():
            value = row[key]
            if not isinstance(value, types) or (isinstance(value, bool) and types is not bool):
                return f"row {i}: {key}={value!r} has the wrong type"
        if not all(math.isfinite(row[k]) and row[k] >= 1 for k in ("pixels", "taps")):
            return f"row {i}: pixels and taps must be finite and >= 1"
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in row["kernel"]) or \
                not all(isinstance(name, str) for name in row["ranking"]):
            return f"row {i}: kernel must hold ints and ranking candidate names"
    return None


def table_stamp() -> tuple:
    """What identifies the table in use: each candidate file's path and modification time."""
    stamp = []
    for path in (user_table_path(), PACKAGED_TABLE):
        try:
            stamp.append((str(path), path.stat().st_mtime_ns))
        except OSError:
            stamp.append((str(path), None))
    return tuple(stamp)


def table() -> list[dict]:
    """The user's tuned table if there is a valid one, else the packaged one (else empty)."""
    for path in (user_table_path(), PACKAGED_TABLE):
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        rows = _load(str(path), mtime)
        if rows is not None:
            return rows
    return []


def separable(w) -> bool:
    """Rank 1 by separable_numpy's own test (tied to the error bound): the kernel runs as
    1-D passes there."""
    w = np.asarray(w)
    if w.ndim < 2 or sum(n > 1 for n in w.shape) < 2:
        return True  # a 1-D or 1xk kernel is trivially separable
    if w.dtype.kind in "fc" and not np.isfinite(w).all():
        return False  # no factors of a kernel holding NaN/Inf (separable_numpy declines it)
    try:
        from candidates.correlate.separable_numpy import separable_rank
    except ImportError:
        return False
    return separable_rank(w) == 1


def dtype_class(spec) -> str:
    out = spec.kwargs.get("out_dtype")
    if out is not None and np.dtype(out).kind in "iu":
        return "int"
    return spec.operation.result_dtype(spec).name


def features(spec, kernel=None) -> dict:
    """What the choice depends on, for image-form specs (correlate, convolve, gaussian)."""
    op = spec.operation
    cspec = op.as_correlate(spec) if spec.op != "correlate" else spec
    x_shape = cspec.shapes[0]
    k_shape = cspec.shapes[1] if len(cspec.shapes) > 1 else ()
    sep = spec.op == "gaussian" or (kernel is not None and separable(kernel))
    return {"op": "correlate" if spec.op == "convolve" else spec.op, "rank": len(x_shape),
            "pixels": math.prod(spec.output_shape()), "taps": max(math.prod(k_shape), 1),
            "kernel": list(k_shape), "separable": bool(sep), "dtype": dtype_class(spec),
            "border": spec.kwargs.get("border", "constant")}


def _aspect(kernel_shape) -> str:
    big = [n for n in kernel_shape if n > 1]
    return "line" if len(big) <= 1 else "box"


def distance(a: dict, b: dict) -> float:
    d = abs(math.log2(max(a["pixels"], 1)) - math.log2(max(b["pixels"], 1)))
    d += 2 * abs(math.log2(a["taps"]) - math.log2(b["taps"]))
    d += DTYPE_PENALTY * (a["dtype"] != b["dtype"])
    d += SEPARABLE_PENALTY * (a["separable"] != b["separable"])
    d += RANK_PENALTY * (a["rank"] != b["rank"])
    d += ASPECT_PENALTY * (_aspect(a["kernel"]) != _aspect(b["kernel"]))
    d += BORDER_PENALTY * (a["border"] != b["border"])
    return d


def ranking(spec, library: str = "numpy", kernel=None) -> tuple[str, ...]:
    """Candidate names in order of preference for this call."""
    return ranked(spec, library, kernel)[0]


def ranked(spec, library: str = "numpy", kernel=None) -> tuple[tuple[str, ...], str]:
    """(candidate names in order of preference, why: the table row or the rule)."""
    op = "correlate" if spec.op == "convolve" else spec.op
    rows = [r for r in table() if r["op"] == op]
    measured: tuple[str, ...] = ()
    why = ""
    if rows and library in ("numpy", "torch") and spec.op in ("correlate", "convolve", "gaussian"):
        f = features(spec, kernel)
        nearest = min(rows, key=lambda r: distance(f, r))
        measured = tuple(nearest["ranking"])
        why = (f"measured choice table, nearest row: {nearest['op']} rank {nearest['rank']}, "
               f"{nearest['pixels']} pixels, kernel {'x'.join(map(str, nearest['kernel']))}, "
               f"{'separable' if nearest['separable'] else 'not separable'}, "
               f"{nearest['dtype']}, {nearest['border']} (distance "
               f"{distance(f, nearest):.2g}; this call: {f['pixels']} pixels, kernel "
               f"{'x'.join(map(str, f['kernel']))}, "
               f"{'separable' if f['separable'] else 'not separable'}, {f['dtype']}, "
               f"{f['border']})")
    fallback = RULES.get((spec.op, library), ())
    rule = f"the preference list of {spec.op} on {library} arrays"
    first = spec.operation.preferred_first(spec, library) \
        if isinstance(spec.operation, ShapeRule) else None
    if first is not None:
        fallback = (first[0],) + tuple(n for n in fallback if n != first[0])
        rule = f"{first[0]} first ({first[1]}), then {rule}"
    if library == "torch":  # tensors stay where they are: torch first, then the table
        names = tuple(dict.fromkeys(fallback[:1] + measured + fallback))
        why = f"{rule} puts {fallback[0]} first" + (f"; then the {why}" if why else "") \
            if fallback else why
    else:
        names = tuple(dict.fromkeys(measured + fallback))
        why = (why + f"; then {rule}") if why else rule
    return names, why


def choose(spec, library: str = "numpy", kernel=None, *, arrays=None,
           accuracy: str = "elementwise", found=None):
    """The first candidate of ``ranking`` that is available, supports ``spec`` and is
    right for the values of ``arrays`` (convbench.values: NaN/Inf, exact integers, and the
    elementwise contract, certified per call for FFT and IIR algorithms). Without
    ``arrays`` only the spec is read (finite values assumed, nothing certified); ``found``
    passes values.facts already computed by the caller. ``library`` "torch" means tensors
    on a GPU (CPU tensors get the numpy choice). The same rule as convbench.plan's."""
    from convbench.plans import Plan

    if arrays is not None and kernel is None and spec.op in KERNEL_VALUE_OPS:
        kernel = xp.to_numpy(arrays[1])
    device = "cpu" if library == "numpy" else "gpu"
    plan = Plan(spec, library, device, None, values.check_accuracy(accuracy), kernel)
    if found is None:
        found = values.facts(spec, arrays) if arrays is not None else values.Facts()
    return plan.pick(None if arrays is None else tuple(a for a in arrays if a is not None),
                     found)


def preference(op: str, library: str) -> tuple[str, ...]:
    """The static preference list of the op's record (used where the measured table has
    no rows)."""
    try:
        return RULES[(op, library)]
    except KeyError:
        raise ValueError(f"no default algorithm for op {op!r} on {library} arrays") from None
