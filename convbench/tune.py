"""``convbench tune``: measure the choice table on this machine.

Times every verified candidate on the image-filtering workloads (default: the quick, seed
and images suites for correlate and gaussian) and writes, per case, its features and
the candidates ranked by median (verified ones only; a candidate too slow to sample
comes after every sampled one). convbench.choose reads the table.

A tune merges: the rows of the cases it measured replace theirs (a measured case with no
verified candidate loses its row), every other row stays. The base is the table already
at the output path, else the packaged one, so ``--filter`` re-measures a few cases without
dropping the rest. The output path is checked before measuring.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from convbench import bench, machine, registry, thread_settings
from convbench.cases import Case, all_suites, suite
from convbench import choose
from convbench.choose import PACKAGED_TABLE, SCHEMA, features, user_table_path
from convbench.results import check_writable, write_atomic
from convbench.timing import QUICK, Protocol

TUNED_OPS = ("correlate", "gaussian")
TUNED_SUITES = ("quick", "seed", "images")


# A candidate of ours goes before the fastest peer only when its median (and its fastest
# sample) is at least this much lower: on this shared 2-core machine a peer's median moved
# by 10-40% between runs of the same day (filter2D on 1024^2 7x7: 1.30-1.85 ms), and a
# default that merely ties a peer should be the peer (never slower than it).
PEER_MARGIN = 0.25


def ranked(rows: list[dict]) -> list[str]:
    """Verified candidates by median; 'slow' ones (one call only) after, by that call.
    The fastest peer moves ahead of every candidate of ours that is not PEER_MARGIN faster
    than it, by the median and by the fastest sample."""
    timed = sorted((r for r in rows if r["status"] == "pass" and not math.isnan(r["median"])),
                   key=lambda r: r["median"])
    peers = [r for r in timed if r.get("peer")]
    if peers:
        best = peers[0]
        # ahead only when clearly faster by the median AND by the fastest sample: a peer
        # whose samples were slowed by other work must not lose a tie
        best_min = min(r.get("min", r["median"]) for r in peers)
        ahead = [r for r in timed if r["median"] < (1 - PEER_MARGIN) * best["median"]
                 and r.get("min", r["median"]) < (1 - PEER_MARGIN) * best_min]
        timed = ahead + [best] + [r for r in timed if r not in ahead and r is not best]
    slow = sorted((r for r in rows if r["status"] == "slow"), key=lambda r: r["min"])
    return [r["candidate"] for r in timed + slow]


def table_rows(cases: list[Case], rows: list[dict]) -> list[dict]:
    out = []
    for case in cases:
        mine = [r for r in rows if r["case"] == case.id]
        order = ranked(mine)
        if not order:
            continue
        kernel = case.arrays()[1] if case.spec.op in choose.KERNEL_VALUE_OPS else None
        row = features(case.spec, kernel)
        row.update(case=case.id, ranking=order,
                   medians={r["candidate"]: r["median"] for r in mine
                            if r["status"] == "pass" and not math.isnan(r["median"])})
        out.append(row)
    return out


def base_rows(path: Path) -> list[dict]:
    """The rows a tune writing to ``path`` merges into: the table at ``path`` if there is
    one, else the packaged table. One that cannot be read is an error, not overwritten."""
    source = path if path.exists() else PACKAGED_TABLE
    if not source.exists():
        return []
    try:  # the reader choose uses: None (with a warning saying why) for an invalid table
        rows = choose._load(str(source), source.stat().st_mtime)
        problem = None if rows is not None else f"not a valid {SCHEMA} table"
    except (OSError, ValueError, KeyError) as exc:
        rows, problem = None, f"{type(exc).__name__}: {exc}"
    if problem:
        raise ValueError(f"the choice table at {source} cannot be used ({problem}); "
                         "move it away or write to another path")
    return [dict(row) for row in rows]


def merged_rows(base: list[dict], measured: list[Case], new: list[dict]) -> list[dict]:
    """``base`` with the rows of the ``measured`` cases replaced by ``new`` (in place, so
    equally near rows keep their order for choose; rows of cases new to the table last)."""
    measured_ids = {case.id for case in measured}
    new_by_case = {row["case"]: row for row in new}
    out = []
    for row in base:
        if row.get("case") not in measured_ids:
            out.append(row)
        elif row["case"] in new_by_case:
            out.append(new_by_case.pop(row["case"]))
    return out + list(new_by_case.values())


def tune_cases(suites=TUNED_SUITES, ops=TUNED_OPS, case_filter=None, skip_large=False) -> list[Case]:
    cases: dict[str, Case] = {}
    for name in suites:
        for op in ops:
            if op in all_suites().get(name, {}):
                for case in suite(name, op):
                    if skip_large and "large" in case.tags:
                        continue
                    if not case_filter or any(f in case.id for f in case_filter):
                        cases.setdefault(case.id, case)
    return list(cases.values())


def tune(path: Path | None = None, *, suites=TUNED_SUITES, ops=TUNED_OPS, threads=None,
         protocol: Protocol = QUICK, case_filter=None, skip_large=False, progress=None,
         slow_call_s: float = 5.0, isolate: bool = True,
         timeout: float | None = None) -> tuple[Path, list[dict]]:
    path = check_writable(path or user_table_path(), "choice table")
    cases = tune_cases(suites, ops, case_filter, skip_large)
    if not cases:
        raise ValueError(f"no cases to tune in suites {suites} for ops {ops}")
    base = base_rows(path)
    rows = []
    libraries = thread_settings.libraries_of(c for op in {case.spec.op for case in cases} for c in registry.candidates(op))
    with thread_settings.threads(threads, libraries=libraries) as n:
        for case in cases:
            rows.extend(bench.run_case(case, registry.candidates(case.spec.op), protocol,
                                       slow_call_s, isolate=isolate, timeout=timeout))
            if progress:
                progress(case.id)
    doc = {"schema": SCHEMA, "version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": machine.metadata(n), "rows": merged_rows(base, cases, table_rows(cases, rows))}
    write_atomic(path, json.dumps(doc, indent=1, default=float) + "\n")
    return path, rows
