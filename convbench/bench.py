"""Verify-then-time over cases and candidates: the rows of a run.

Per case: every candidate is checked against the oracle (its first call doubles as a
warm-up); only those that pass are timed, interleaved, and compared as ratios to the
fastest in the same run. A timing is never reported for a wrong result.
"""
from __future__ import annotations

import math
import time

from convbench import verification as v
from convbench.cases import Case, estimate_bytes
from convbench.machine import available_memory
from convbench.registry import Candidate
from convbench.timing import QUICK, Protocol, measure

SLOW_CALL_S = 10.0   # a single call slower than this is reported, not sampled 7 times


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
             slow_call_s: float = SLOW_CALL_S) -> list[dict]:
    rows, timed = [], {}
    refusal = memory_refusal(case)
    for candidate in candidates:
        if candidate.op != case.spec.op:
            continue
        if refusal:
            rows.append(_row(case, candidate, "refused", refusal))
            continue
        skip = v.skip_reason(candidate, case)
        if skip:
            rows.append(_row(case, candidate, *skip))
            continue
        try:
            native = v.native_inputs(candidate, case)
            fn, spec = candidate.function(), case.spec
            started = time.perf_counter()
            with v.time_limit(v.CALL_TIMEOUT_S):
                out = v.call(candidate, case, native)
            first_call = time.perf_counter() - started
            check = v.check_output(candidate, case, out)
            # --- GPU candidates: transfers timed apart from the kernel (convbench/gpu.py) ---
            transfers = {}
            if candidate.device == "gpu" and check.status == "pass":
                from convbench import gpu

                transfers = gpu.transfers(candidate, case, out)
            # --- end GPU ---
            del out
        except Exception as exc:
            rows.append(_row(case, candidate, "error", f"{type(exc).__name__}: {exc}"))
            continue
        row = _row(case, candidate, check.status, check.detail, worst=check.worst,
                   checked=check.checked, error_model=check.error_model, **transfers)
        rows.append(row)
        if check.status != "pass":
            continue
        # a first call may compile (numba, Triton), autotune (cudnn.benchmark) or plan
        # (cuFFT): the slow rule reads a second call
        if first_call > slow_call_s:
            started = time.perf_counter()
            with v.time_limit(v.CALL_TIMEOUT_S):
                v.call(candidate, case, native)
            first_call = time.perf_counter() - started
        if first_call > slow_call_s:
            row["status"] = "slow"
            row["detail"] = f"one call took {first_call:.1f} s (> {slow_call_s:g} s): not sampled"
            row["min"] = first_call
            continue
        timed[candidate.name] = (row, _bind(candidate, case, fn, native, spec))
    if timed:
        # --- GPU candidates: device events (convbench/gpu.py); the others: convbench.timing ---
        on_gpu = {name: call for name, (_, call) in timed.items()
                  if not callable(call)}                # a gpu.Bound (see _bind)
        timings = measure({name: call for name, (_, call) in timed.items()
                           if name not in on_gpu}, protocol)
        if on_gpu:
            from convbench import gpu

            timings.update(gpu.measure(on_gpu, protocol))
        # --- end GPU ---
        fastest = min(t.median for t in timings.values())
        for name, (row, _) in timed.items():
            t = timings[name]
            row.update(median=t.median, iqr=t.iqr, min=t.min, loops=t.loops, samples=t.samples,
                       ratio=t.median / fastest)
            if hasattr(t, "extra"):
                row.update(t.extra())
    _mark_default(case, rows)
    return rows


def _mark_default(case: Case, rows: list[dict]) -> None:
    """Flag the row of the candidate convbench's default choice would run for this case."""
    from convbench.choose import choose

    kernel = case.arrays()[1] if case.spec.op in ("correlate", "convolve") else None
    try:
        name = choose(case.spec, "numpy", kernel).name
    except ValueError:
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


def _bind(candidate, case, fn, native, spec):
    op = spec.operation

    if candidate.device == "gpu":   # a gpu.Bound: timed with device events (convbench/gpu.py)
        from convbench import gpu

        return gpu.bind(candidate, case, native)

    def call():
        return op.call(fn, native, spec)
    return call


def run(cases: list[Case], candidates: list[Candidate], protocol: Protocol = QUICK,
        progress=None, slow_call_s: float = SLOW_CALL_S) -> list[dict]:
    rows = []
    for case in cases:
        rows.extend(run_case(case, candidates, protocol, slow_call_s))
        if progress:
            progress(case.id)
    return rows
