"""Verification: run a candidate on cases and compare with the float64 oracle under the
error bound of convbench.tolerance.

Small outputs are compared whole. Large ones are compared at sampled points that the
pointwise oracle evaluates directly: every border region (each combination of low
border / interior / high border over the axes) plus random interior points.
"""
from __future__ import annotations

import contextlib
import functools
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np

from convbench import arrays as xp
from convbench import values
from convbench.cases import Case
from convbench.ops import Bordered, Normwise, SeveralOutputs
from convbench.registry import Candidate, user_candidate
from convbench.tolerance import bound, compare

WHOLE_LIMIT = 300_000     # products the Python oracle computes whole (about a second)
POINTS_PER_ZONE = 2
INTERIOR_POINTS = 40
CALL_TIMEOUT_S = 300

STATUSES = ("pass", "FAIL", "error", "unsupported", "unavailable", "skipped")


@dataclass
class Row:
    op: str
    case: str
    candidate: str
    status: str
    detail: str = ""
    max_error: float = math.nan
    worst: float = math.nan       # largest error / bound; <= 1 passes
    checked: str = ""             # "all" or "<n> points"
    error_model: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Reference:
    ref: np.ndarray               # oracle values (whole output, or at points); a tuple
                                  # per output for SeveralOutputs (the others whole)
    absref: np.ndarray            # the op on absolute values: the error bound's scale
    points: tuple | None          # index arrays of the sampled points, None when whole
    norms: tuple | None           # ||x padded||_2 (bounded), ||w||_2 (fft); max(|x|, |cval|)
                                  # (iir); None where the op has no normwise model
    length: int | None            # FFT transform length (product over axes)


def sample_points(case: Case) -> tuple[np.ndarray, ...]:
    """Output indices to check: each border zone combination, plus random points."""
    spec, op = case.spec, case.spec.operation
    shape = spec.output_shape()
    zones = op.border_zones(spec) if isinstance(op, Bordered) else ((0, 0),) * len(shape)
    rng = np.random.default_rng(case.seed)
    per_axis = []
    for n, (lo, hi) in zip(shape, zones):
        lo, hi = min(lo, n), min(hi, max(n - lo, 0))
        parts = [(0, lo), (lo, n - hi), (n - hi, n)]
        per_axis.append([p for p in parts if p[1] > p[0]])
    points = set()
    for combo in np.ndindex(*[len(p) for p in per_axis]):
        ranges = [per_axis[a][z] for a, z in enumerate(combo)]
        points.add(tuple(r[0] for r in ranges))          # the corner of the zone
        points.add(tuple(r[1] - 1 for r in ranges))
        for _ in range(POINTS_PER_ZONE):
            points.add(tuple(int(rng.integers(r[0], r[1])) for r in ranges))
    for _ in range(INTERIOR_POINTS):
        points.add(tuple(int(rng.integers(0, n)) for n in shape))
    ordered = sorted(points)
    return tuple(np.array(axis) for axis in zip(*ordered))


@functools.lru_cache(maxsize=32)
def reference(case: Case) -> Reference:
    """Oracle values for ``case`` (cached: every candidate is checked against the same)."""
    spec, op = case.spec, case.spec.operation
    arrays = case.arrays()
    with np.errstate(invalid="ignore", over="ignore"):
        finite = [np.where(np.isfinite(a), a, 0) for a in arrays] if case.nonfinite else arrays
        norms, length = (values.norms(spec, finite), op.fft_sizes(spec)[1]) \
            if isinstance(op, Normwise) else (None, None)
        if isinstance(op, SeveralOutputs):
            points = None if op.work(spec) <= WHOLE_LIMIT else sample_points(case)
            refs, scales = zip(*op.reference_outputs(spec, arrays, points))
            return Reference(refs, scales, points, norms, length)
        if op.work(spec) <= WHOLE_LIMIT:
            return Reference(op.oracle(spec, arrays), op.error_scale(spec, arrays), None, norms, length)
        points = sample_points(case)
        ref = np.array([op.oracle_at(spec, arrays, i) for i in zip(*points)])
        return Reference(ref, op.error_scale(spec, arrays, points), points, norms, length)


@functools.lru_cache(maxsize=32)
def _winograd_scale(case: Case):
    """The 'winograd' model's (terms, scale) at the reference's points (ops/conv.py)."""
    spec = case.spec
    return spec.operation.winograd_scale(spec, case.arrays(), reference(case).points)


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise TimeoutError in the main thread after ``seconds`` (Python-level work only)."""
    if seconds is None or threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum, frame):
        raise TimeoutError(f"candidate ran longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # an enclosing timer (pytest-timeout, say) keeps its remaining time
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))


def native_inputs(candidate: Candidate, case: Case):
    """The case's arrays as the candidate takes them (its to_native). A bfloat16 array is
    held in float32 (numpy has no bfloat16; its values are bfloat16 ones, convbench.data)
    and reaches the candidate as a bfloat16 tensor."""
    return tuple(_as_bfloat16(candidate.to_native(a)) if d == "bfloat16" else candidate.to_native(a)
                 for a, d in zip(case.arrays(), case.spec.dtypes))


def _as_bfloat16(native):
    if xp.library_of(native) != "torch":
        return native
    import torch

    return native.to(torch.bfloat16)


def call(candidate: Candidate, case: Case, native):
    op = case.spec.operation
    out = op.call(candidate.function(), native, case.spec)
    if isinstance(op, SeveralOutputs):
        if not isinstance(out, tuple) or len(out) != len(op.outputs):
            raise TypeError(f"expected a tuple {op.outputs} from {candidate.name}, got "
                            f"{type(out).__name__}")
        for a in out:
            xp.synchronize(a)
        return out
    if isinstance(out, tuple):
        raise TypeError(f"expected one array from {candidate.name}, got a tuple")
    xp.synchronize(out)
    return out


def too_costly(candidate: Candidate, case: Case) -> str | None:
    """A direct-sum candidate on a case whose direct work would take minutes to hours (a
    161x161 kernel on a 4096x4096 image) is skipped: its C loops cannot be interrupted.
    The candidate states its limit as MAX_WORK (multiply-adds of the direct sum)."""
    limit = candidate.max_work
    if limit is None:
        return None
    spec = case.spec.operation.as_correlate(case.spec) if candidate.reused_from else case.spec
    work = spec.operation.work(spec)
    if work > limit:
        return f"skipped: a direct sum of {work:.2g} multiply-adds (limit {limit:.2g}) would take too long"
    return None


def skip_reason(candidate: Candidate, case: Case) -> tuple[str, str] | None:
    """(status, reason) when the candidate is not run on the case."""
    reason = candidate.unavailable()
    if reason:
        return "unavailable", reason
    reason = candidate.supports(case.spec)
    if reason:
        return "unsupported", reason
    if "bfloat16" in case.spec.dtypes and candidate.module_path is None:
        return "unsupported", ("bfloat16 cases are for candidate modules taking torch tensors "
                               "(a function given numpy arrays cannot hold bfloat16)")
    reason = too_costly(candidate, case)
    if reason:
        return "skipped", reason
    reason = values.ineligible(candidate, case.spec, case_facts(case))
    if reason:
        return "unsupported", reason
    return None


@functools.lru_cache(maxsize=32)
def case_facts(case: Case) -> values.Facts:
    """What the case's values allow (NaN/Inf, exact integer sums): convbench.values."""
    return values.facts(case.spec, case.arrays())


def check_output(candidate: Candidate, case: Case, out) -> Row:
    spec = case.spec
    model = "exact" if values.exact_integer(spec) else candidate.error_model(spec)
    ref = reference(case)
    if isinstance(spec.operation, SeveralOutputs):
        return _check_outputs(candidate, case, out, model, ref)
    try:
        result_dtype = spec.operation.result_dtype(spec)
    except TypeError:               # a bfloat16 result: numpy has no such dtype
        result_dtype = "bfloat16"
        if xp.dtype_name(out) != "bfloat16":
            return Row(spec.op, case.id, candidate.name, "FAIL",
                       f"dtype {xp.dtype_name(out)}, expected bfloat16", error_model=model)
    got = xp.to_numpy(out)
    expected_shape = tuple(spec.output_shape())
    if got.shape != expected_shape:
        return Row(spec.op, case.id, candidate.name, "FAIL",
                   f"shape {got.shape}, expected {expected_shape}", error_model=model)
    if ref.points is not None:
        got = got[ref.points]
    float_dtype = result_dtype if result_dtype == "bfloat16" or result_dtype.kind in "fc" \
        else spec.operation.result_dtype(spec.replace(out_dtype=None))
    terms, absref = spec.operation.terms(spec), ref.absref
    if model == "winograd":
        terms, absref = _winograd_scale(case)
    tol = bound(model, result_dtype=float_dtype, ref=ref.ref, absref=absref,
                terms=terms, norms=ref.norms, length=ref.length)
    verdict = compare(got, ref.ref, tol,
                      out_dtype=None if result_dtype == "bfloat16" else result_dtype)
    checked = "all" if ref.points is None else f"{len(ref.points[0])} points"
    return Row(spec.op, case.id, candidate.name, "pass" if verdict["passed"] else "FAIL",
               verdict["reason"], verdict["max_error"], verdict["worst"], checked, model)


def _check_outputs(candidate: Candidate, case: Case, out, model: str, ref: Reference) -> Row:
    """check_output for an op with several outputs: each under its own dtype's bound; the
    row reports the first failure (named by output) and the worst ratio of all."""
    spec, op = case.spec, case.spec.operation
    worst, max_error = 0.0, 0.0
    checked = "all" if ref.points is None else f"{len(ref.points[0])} points"
    for k, (name, shape, dtype) in enumerate(zip(op.outputs, op.output_shapes(spec),
                                                 op.output_dtypes(spec))):
        got = xp.to_numpy(out[k])
        if got.shape != tuple(shape):
            return Row(spec.op, case.id, candidate.name, "FAIL",
                       f"{name}: shape {got.shape}, expected {tuple(shape)}", error_model=model)
        if k == 0 and ref.points is not None:
            got = got[ref.points]
        tol = bound(model, result_dtype=dtype, ref=ref.ref[k], absref=ref.absref[k],
                    terms=op.terms(spec))
        verdict = compare(got, ref.ref[k], tol,
                          out_dtype=None if dtype == "bfloat16" else np.dtype(dtype))
        if not verdict["passed"]:
            return Row(spec.op, case.id, candidate.name, "FAIL", f"{name}: {verdict['reason']}",
                       verdict["max_error"], verdict["worst"], checked, model)
        worst = max(worst, verdict["worst"])
        max_error = max(max_error, verdict["max_error"])
    return Row(spec.op, case.id, candidate.name, "pass", "", max_error, worst, checked, model)


def verify_case(candidate: Candidate, case: Case, timeout: float | None = None,
                isolate: bool = False) -> Row:
    """One candidate on one case (convbench.runner, verification only)."""
    return verify_candidates([candidate], [case], timeout=timeout, isolate=isolate).rows[0]


class Report:
    """Verification rows for one or more candidates, with a verdict and a table."""

    def __init__(self, rows: list[Row]):
        self.rows = rows

    @property
    def failures(self) -> list[Row]:
        return [r for r in self.rows if r.status in ("FAIL", "error")]

    @property
    def passed(self) -> bool:
        """No failure, and at least one case actually checked."""
        return not self.failures and any(r.status == "pass" for r in self.rows)

    def __bool__(self) -> bool:
        return self.passed

    def counts(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.rows) for s in STATUSES}

    def summary(self) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in self.counts().items() if n)
        verdict = "PASSED" if self.passed else "FAILED"
        return f"{verdict}: {counts}"

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([r.as_dict() for r in self.rows])

    def __str__(self) -> str:
        from convbench.table import format_table

        shown = self.failures or self.rows
        lines = [format_table(
            [{"case": r.case, "candidate": r.candidate, "status": r.status,
              "err/bound": "" if math.isnan(r.worst) else f"{r.worst:.2g}",
              "checked": r.checked, "detail": r.detail[:90]} for r in shown[:40]])]
        if len(shown) > 40:
            lines.append(f"... {len(shown) - 40} more rows")
        lines.append(self.summary())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Report {self.summary()}>"


def verify_candidates(candidates, cases, progress=None, *, timeout: float | None = None,
                      isolate: bool = False) -> Report:
    """Every candidate on every case of its op (convbench.runner, verification only; with
    ``isolate`` in a worker process, see there). Ctrl-C raises runner.Stopped whose
    ``report`` holds the completed cases."""
    from convbench import runner

    cases = list(cases)
    per_case, plans = [], []
    for case in cases:
        ops = [c for c in candidates if c.op == case.spec.op]
        mine = list(zip(ops, runner.not_run(case, ops)))
        per_case.append(mine)
        plans.append([c for c, skip in mine if not skip])
    rows = []
    settings = runner.Settings(timed=False, timeout=timeout)

    def done(k, outcomes):
        case, results = cases[k], iter(outcomes)
        for candidate, skip in per_case[k]:
            if skip:
                rows.append(Row(case.spec.op, case.id, candidate.name, *skip))
                continue
            o = next(results)
            rows.append(o.row if o.row is not None and o.row.status == o.status
                        else Row(case.spec.op, case.id, candidate.name, o.status, o.detail))
        if progress:
            progress()

    try:
        runner.run_cases(cases, plans, settings, isolate=isolate, on_case_done=done)
    except runner.Stopped as exc:
        exc.report = Report(rows)
        raise
    return Report(rows)


def verify(op: str, fn, cases="small", *, error: str = "direct", name: str | None = None,
           timeout: float | None = None, isolate: bool = False) -> Report:
    """Check any function with ``op``'s signature on the op's case set (bring your own kernel).

    ``fn(x, w, *, border, cval, padding, origin[, out_dtype])`` for correlate/convolve takes
    numpy arrays and returns an array (numpy, torch or cupy). ``cases`` is a suite name or
    a list of Case. ``error`` names the error model your algorithm obeys ('direct' for any
    summation order, 'fft' for FFT-based ones). Returns a Report; ``bool(report)`` is the
    verdict, ``print(report)`` shows the failing rows.

    ``timeout``: seconds one call may take (default CALL_TIMEOUT_S). ``isolate=True`` runs
    ``fn`` in a forked worker process: a crash (abort, segfault), a hang past ``timeout``
    or an exit then fails that case's row and the other cases still run; it costs a fork
    and a few milliseconds a case. Without it, the timeout (SIGALRM) stops Python-level
    work on the main thread only, and a crash ends the calling process.
    """
    from convbench.cases import suite
    from convbench.ops import get_op

    get_op(op)
    candidate = user_candidate(op, fn, error=error, name=name)
    if isinstance(cases, str):
        cases = suite(cases, op)
    started = time.perf_counter()
    report = verify_candidates([candidate], list(cases), timeout=timeout, isolate=isolate)
    report.seconds = time.perf_counter() - started
    return report
