"""Verify-then-time over cases and candidates: the rows of a run.

Per case: every candidate is checked against the oracle (its first call doubles as a
warm-up); only those that pass are timed, interleaved, and compared as ratios to the
fastest in the same run. A timing is never reported for a wrong result. The measuring is
convbench.runner's, by default in a worker process with a per-call timeout (``isolate``,
``timeout``): a candidate that crashes, hangs or exits fails its own row. A case whose
inputs need a missing optional package (scikit-image's photographs) has its rows
"unavailable"; the other cases run.
"""
from __future__ import annotations

import math

from convbench import runner
from convbench.cases import Case, estimate_bytes
from convbench.machine import available_memory
from convbench.registry import Candidate
from convbench.timing import QUICK, Protocol

SLOW_CALL_S = runner.SLOW_CALL_S   # a single call slower than this is reported, not sampled


def _row(case: Case, candidate: Candidate, status: str, detail: str = "", **extra) -> dict:
    row = {"op": case.spec.op, "case": case.id, "candidate": candidate.name, "status": status,
           "detail": detail, "device": candidate.device if status != "unavailable" else "",
           "peer": candidate.peer, "default": False,
           "median": math.nan, "iqr": math.nan, "min": math.nan, "loops": 0, "samples": [],
           "ratio": math.nan, "worst": math.nan, "checked": "", "error_model": ""}
    row.update(extra)
    return row


def memory_refusal(case: Case, factor: float = 4.0) -> str | None:
    """Refuse a case whose inputs and outputs (times ``factor`` for temporaries) exceed
    the memory available now, with the estimate."""
    need = estimate_bytes(case) * factor
    have = available_memory()
    if have is not None and need > have:
        return f"refused: needs about {need / 2**30:.1f} GiB, {have / 2**30:.1f} GiB available"
    return None


def run_case(case: Case, candidates: list[Candidate], protocol: Protocol = QUICK,
             slow_call_s: float = SLOW_CALL_S, *, isolate: bool = True,
             timeout: float | None = None) -> list[dict]:
    return run([case], candidates, protocol, slow_call_s=slow_call_s, isolate=isolate,
               timeout=timeout)


def _plan(case: Case, candidates: list[Candidate]) -> tuple[list[dict | Candidate], bool]:
    """Per candidate of the case's op: its row when it is not run (refused, skipped, ...),
    else the candidate itself; and whether the inputs could be built."""
    mine = [c for c in candidates if c.op == case.spec.op]
    refusal = memory_refusal(case) if mine else None
    if refusal:
        return [_row(case, c, "refused", refusal) for c in mine], False
    reasons = runner.not_run(case, mine)
    plan = [_row(case, c, *reason) if reason else c for c, reason in zip(mine, reasons)]
    return plan, bool(mine) and runner.inputs_problem(case) is None


def _outcome_row(case: Case, candidate: Candidate, o: runner.Outcome, slow_call_s: float) -> dict:
    check = {} if o.row is None else dict(worst=o.row.worst, checked=o.row.checked,
                                          error_model=o.row.error_model)
    row = _row(case, candidate, o.status, o.detail, **check, **o.transfers)
    if o.status == "slow":
        row["detail"] = f"one call took {o.first_call:.1f} s (> {slow_call_s:g} s): not sampled"
        row["min"] = o.first_call
    if o.timing is not None:
        t = o.timing
        row.update(median=t.median, iqr=t.iqr, min=t.min, loops=t.loops, samples=t.samples)
        if hasattr(t, "extra"):
            row.update(t.extra())
    return row


def _mark_default(case: Case, rows: list[dict]) -> None:
    """Flag the row of the candidate convbench's default choice would run for this case."""
    from convbench.choose import choose

    from convbench.data import MissingPackage

    try:   # the case's values too: the default reads them (convbench.values)
        name = choose(case.spec, "numpy", arrays=case.arrays()).name
    except (ValueError, MissingPackage):
        return
    for row in rows:
        row["default"] = row["candidate"] == name


def default_vs_peers(rows: list[dict]) -> list[dict]:
    """Per case: the default choice's median over the fastest peer's, both from this run."""
    out = []
    for case in dict.fromkeys(r["case"] for r in rows):
        mine = [r for r in rows if r["case"] == case]
        default = next((r for r in mine if r["default"]), None)
        peers = [r for r in mine if r["peer"] and r["median"] == r["median"]]
        if default is None or not peers:
            continue
        best = min(peers, key=lambda r: r["median"])
        timed = default["median"] == default["median"]
        out.append({"case": case, "default": default["candidate"],
                    "default_median": default["median"] if timed else math.nan,
                    "fastest_peer": best["candidate"], "peer_median": best["median"],
                    "ratio": default["median"] / best["median"] if timed else math.nan,
                    "default_status": default["status"]})
    return out


def run(cases: list[Case], candidates: list[Candidate], protocol: Protocol = QUICK,
        progress=None, slow_call_s: float = SLOW_CALL_S, *, isolate: bool = True,
        timeout: float | None = None) -> list[dict]:
    """The rows of every case (convbench.runner: verify, then time the passing ones).
    Ctrl-C raises runner.Stopped whose ``rows`` are those of the completed cases."""
    plans = [_plan(case, candidates) for case in cases]
    rows: list[dict] = []

    def case_done(k, outcomes):
        case, (plan, inputs_ok) = cases[k], plans[k]
        runs = iter(zip([p for p in plan if isinstance(p, Candidate)], outcomes))
        mine = [p if isinstance(p, dict) else _outcome_row(case, *next(runs), slow_call_s)
                for p in plan]
        medians = [r["median"] for r in mine if not math.isnan(r["median"])]
        for r in mine:
            if not math.isnan(r["median"]):
                r["ratio"] = r["median"] / min(medians)
        if inputs_ok:
            _mark_default(case, mine)
        rows.extend(mine)
        if progress:
            progress(case.id)

    settings = runner.Settings(protocol, slow_call_s, timeout=timeout)
    lists = [[p for p in plan if isinstance(p, Candidate)] for plan, _ in plans]
    try:
        runner.run_cases(cases, lists, settings, isolate=isolate, on_case_done=case_done)
    except runner.Stopped as exc:
        exc.rows = rows
        raise
    return rows
