"""The CI regression gate: ``convbench gate``.

Runs a gate suite (a handful of cases x every available candidate), verifies every
candidate on every case against the oracle, times the ones that pass together with a fixed
reference workload, and compares each candidate's time with a committed baseline.

Normalisation: within one case, the candidates and the reference workload are timed
interleaved sample by sample (convbench.timing.measure), and every candidate sample is
divided by the reference sample taken next to it. A machine that is uniformly slower
today (another tenant, a slower host of the same kind) moves both and cancels out.

A slowdown is flagged only when both hold:
  * effect: median(normalised now) / median(normalised baseline) - 1 > min_effect (0.25), and
  * significance: one-sided Mann-Whitney U test of the normalised samples (now greater than
    baseline) with p < alpha (0.01). The baseline stores every per-sample time for this.

Case mates: the reference is small and cache-resident, and neighbours on a shared host
slow memory-bound cases more than it (every candidate of the 1024^2 Gaussian case 1.3-1.5x,
confirmed twice, with no code changed). So a candidate flagged by the rule above stays
flagged only when it is also slower by the same rule after dividing its samples by the
median ratio (now / baseline) of the other candidates of its case; otherwise its verdict
is "shared" and passes. A candidate alone in its case has no mates and no such excuse. The
cost: a regression that slows every candidate of a case alike (the harness's own call
path) is reported as "shared", not failed.

Confirmation: every candidate flagged slower is measured a second time (again interleaved
with the reference and with its case mates) and stays flagged only if the second
measurement is slower by the same rules; otherwise it is reported "unconfirmed" (noise)
or "shared" and does not fail the gate.

Threads: the gate times with one thread per library by default (``--threads 1``), like
the single-threaded reference. On a 2-core machine shared with other work, a candidate
using both cores slows down whenever anything else runs while the reference does not, and
that showed up as "confirmed" slowdowns of unchanged code (results/README.md, "Gate").
``--threads 0`` (all cores) gates threaded performance on a quiet machine.

Slow candidates: one whose call takes longer than ``SLOW_CALL_S`` (after a second call, for
JIT compilers) is verified but not timed, so a new heavy case cannot stretch the gate. When
comparing, the limit is raised to ``SLOW_MARGIN`` times the slowest baseline timing: an
entry the baseline timed is timed again, even on a machine slower today (a call at 0.39 s
in the baseline read 0.85 s on a loaded machine, and would otherwise go "missing").

Missing timings: a baseline entry that cannot be measured now (its candidate unavailable,
unsupported, too slow to time, or not run at all) is a harness error, not a pass: a gate
that silently skips what it cannot measure passes whenever a library goes missing. With
``--allow-missing`` such entries are listed as "missing" and do not fail. Entries of
candidates left out with ``--candidate`` are out of scope, not missing.

Exit codes (each run prints a one-line reason, then a table), the first that applies:
  2 wrong result (a candidate failed verification or crashed);
  3 harness or usage error: a baseline timing not measured now (unless --allow-missing),
    a missing, corrupt or invalid baseline (every per-sample time must be a finite
    number > 0, 'seconds' and 'reference' of equal length, at least 3), an unknown suite
    or candidate, a baseline path that cannot be written (--update-baseline, checked
    before measuring), nothing compared, or any unexpected exception, SystemExit or
    KeyboardInterrupt (the gate never ends in a traceback);
  1 slower (confirmed, see above);
  0 pass.

Baselines live in results/baselines/<kind>.json, one per machine kind. The kind is
``<cpu model>-<n>c`` in lower case with runs of non-alphanumerics turned into '-', e.g.
"AMD EPYC" with 2 cores -> ``amd-epyc-2c``; with a GPU, ``-<gpu name>`` is appended.
``--update-baseline`` measures and writes the baseline atomically (never when a candidate
is wrong).

Flags: --suite, --baseline, --update-baseline, --allow-missing, --min-effect, --alpha,
--samples, --no-confirm, --candidate, --threads (``convbench gate --help``).
"""
from __future__ import annotations

import functools
import json
import math
import re
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

EXIT_PASS, EXIT_SLOWER, EXIT_WRONG, EXIT_HARNESS = 0, 1, 2, 3
SCHEMA = "convbench-gate-baseline"
VERSION = 1
BASELINES_DIR = Path(__file__).resolve().parent.parent / "results" / "baselines"
DEFAULT_MIN_EFFECT = 0.25
DEFAULT_ALPHA = 0.01
DEFAULT_SAMPLES = 15
DEFAULT_SAMPLE_S = 0.05   # one sample lasts at least this long (loops calibrated)
SLOW_CALL_S = 0.4         # slower candidates are verified, not timed (the gate's time budget)
SLOW_MARGIN = 4.0         # comparing: time whatever the baseline timed, up to 4x its time
DEFAULT_THREADS = 1       # see "Threads" in the module docstring
REFERENCE = "reference"


class GateError(Exception):
    """A harness or usage error: exit 3 with this message as the reason."""


# ------------------------------------------------------------------------------ suites

# (op, catalogue suite, workload name): the gate's cases, picked from the catalogue by name
# so they stay the same when a suite grows. Every other op with a "quick" suite adds its
# first quick case, so a family joins the gate when its cases land.
GATE_CASES = (
    ("correlate", "quick", "camera-sharpen"),
    ("correlate", "quick", "camera-gauss-u8"),
    ("correlate", "quick", "seed-fft-1k"),
    ("convolve", "quick", "camera-sharpen"),
)


def _gate_cases():
    from convbench import registry
    from convbench.cases import all_suites, suite

    cases = []
    for op, suite_name, name in GATE_CASES:
        cases.extend(c for c in suite(suite_name, op) if c.name == name)
    listed = {op for op, _, _ in GATE_CASES}
    quick = all_suites().get("quick", {})
    for op in registry.ops():
        if op not in listed and op in quick:
            cases.extend(suite("quick", op)[:1])
    return cases


def _tiny_cases():
    from convbench.cases import make_case

    return [make_case("correlate", [(192, 192), (3, 3)], "float32", border="symmetric",
                      name="gate-tiny")]


# suite name -> case builder. "tiny" is for the gate's own tests and smoke runs.
SUITES: dict[str, Callable] = {"gate": _gate_cases, "tiny": _tiny_cases}


def suite_cases(name: str):
    if name not in SUITES:
        raise GateError(f"unknown gate suite {name!r}; accepted: {', '.join(SUITES)}")
    cases = SUITES[name]()
    if not cases:
        raise GateError(f"gate suite {name!r} has no cases in this checkout")
    return cases


# ------------------------------------------------------------------- machine kind


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def machine_kind(meta: dict | None = None) -> str:
    """``<cpu model>-<cores>c[-<gpu>]`` (see the module docstring)."""
    if meta is None:
        from convbench import machine

        meta = machine.metadata()
    kind = f"{_slug(meta.get('cpu') or 'cpu')}-{meta.get('cores') or 0}c"
    gpu = meta.get("gpu")
    if gpu:
        kind += f"-{_slug(gpu['name'])}"
    return kind


def default_baseline(kind: str | None = None) -> Path:
    return BASELINES_DIR / f"{kind or machine_kind()}.json"


# -------------------------------------------------------------------- reference


def reference_workload() -> Callable[[], object]:
    """A fixed scipy.ndimage filter (single-threaded C, memory and arithmetic like the
    candidates): 256 x 256 float64 image, 5 x 5 kernel, a few milliseconds."""
    import numpy as np
    from scipy import ndimage

    rng = np.random.default_rng(20240601)
    image = rng.standard_normal((256, 256))
    kernel = rng.standard_normal((5, 5))

    def reference():
        return ndimage.correlate(image, kernel, mode="reflect")

    return reference


# --------------------------------------------------------------------- measuring


@dataclass
class Entry:
    """One candidate on one case: its verdict and (when it passed) its samples."""

    op: str
    case: str
    candidate: str
    status: str                     # pass, FAIL, error, slow, unsupported, unavailable
    detail: str = ""
    seconds: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.op}/{self.case}/{self.candidate}"

    @property
    def normalized(self) -> list[float]:
        return [s / r for s, r in zip(self.seconds, self.reference)]


def measure_suite(cases, candidate_names=None, samples: int = DEFAULT_SAMPLES,
                  sample_s: float = DEFAULT_SAMPLE_S, slow_call_s: float = SLOW_CALL_S,
                  progress=None, *, isolate: bool = True, timeout: float | None = None) -> list[Entry]:
    """Verify every candidate on every case, then time the passing ones interleaved with
    the reference workload (a candidate whose one call takes longer than ``slow_call_s`` is
    verified but not timed: it would stretch the gate past its budget). The measuring is
    convbench.runner's: by default in a worker process, so a candidate that crashes, hangs
    past ``timeout`` seconds or exits fails its own entry ("error") and the gate goes on.
    Ctrl-C raises runner.Stopped whose ``entries`` are those of the completed cases."""
    from convbench import registry, runner
    from convbench.timing import Protocol

    protocol = Protocol(warmup_s=0.05, sample_s=sample_s, samples=samples)
    entries, lists, plans = [], [], []
    for case in cases:
        mine = [c for c in registry.candidates(case.spec.op)
                if not candidate_names or c.name in candidate_names]
        plan = [Entry(case.spec.op, case.id, c.name, *skip) if skip else c
                for c, skip in zip(mine, runner.not_run(case, mine))]
        plans.append(plan)
        lists.append([p for p in plan if not isinstance(p, Entry)])

    def case_done(k, outcomes):
        case, outcome = cases[k], iter(outcomes)
        mine = [p if isinstance(p, Entry) else _entry(case, p, next(outcome)) for p in plans[k]]
        entries.extend(mine)
        by_case.append((k, mine))
        if progress:
            progress(case.id)

    def _entry(case, candidate, o):
        entry = Entry(case.spec.op, case.id, candidate.name, o.status, o.detail)
        if o.status == "slow":
            entry.detail = (f"verified; one call took {o.first_call:.2f} s (> {slow_call_s:g} s): "
                            "not timed by the gate")
        if o.timing is not None:
            entry.seconds = list(o.timing.samples)
        return entry

    by_case = []
    settings = runner.Settings(protocol, slow_call_s, timeout=timeout)
    try:
        results = runner.run_cases(cases, lists, settings, isolate=isolate,
                                   extra_factory=_reference_factory, on_case_done=case_done)
    except runner.Stopped as exc:
        exc.entries = entries
        raise
    for k, mine in by_case:
        for entry in mine:
            if entry.seconds:
                entry.reference = list(results[k][1][REFERENCE].samples)
    return entries


def _reference_factory():
    return {REFERENCE: reference_workload()}


# -------------------------------------------------------------------- comparing


@dataclass
class Verdict:
    key: str
    status: str          # ok, SLOWER, shared, unconfirmed, faster, WRONG, new, missing, skipped
    # missing: in the baseline but not measured now (fails unless allowed, see decide)
    ratio: float = math.nan
    p: float = math.nan
    now: float = math.nan        # median seconds now
    base: float = math.nan       # median seconds in the baseline
    detail: str = ""


def _median(xs) -> float:
    return statistics.median(xs) if xs else math.nan


def compare(entries: list[Entry], baseline: dict, min_effect: float = DEFAULT_MIN_EFFECT,
            alpha: float = DEFAULT_ALPHA) -> list[Verdict]:
    """One verdict per entry (and per baseline entry not measured). A slowdown the other
    candidates of the same case share is the machine's, not the candidate's: a candidate is
    SLOWER only when it is also slower, by the same rule, than the median ratio of its case
    mates (status "shared" otherwise). See "Case mates" in the module docstring."""
    from scipy.stats import mannwhitneyu

    def slower(now, before, shift=1.0):
        now = [x / shift for x in now]
        ratio = _median(now) / _median(before)
        p = float(mannwhitneyu(now, before, alternative="greater").pvalue)
        return ratio - 1 > min_effect and p < alpha, ratio, p

    base_entries = baseline["entries"]
    verdicts, seen, ratios, befores = [], set(), {}, {}
    for e in entries:
        seen.add(e.key)
        if e.status in ("FAIL", "error"):
            verdicts.append(Verdict(e.key, "WRONG", detail=f"{e.status}: {e.detail}"))
            continue
        if e.status != "pass":
            detail = e.detail if e.detail.startswith(e.status) else f"{e.status}: {e.detail}"
            if e.key in base_entries:
                verdicts.append(Verdict(e.key, "missing", base=_median(base_entries[e.key]["seconds"]),
                                        detail=f"in the baseline, now {detail}"))
            else:
                verdicts.append(Verdict(e.key, "skipped", detail=detail))
            continue
        now = e.normalized
        base = base_entries.get(e.key)
        if base is None:
            verdicts.append(Verdict(e.key, "new", now=_median(e.seconds),
                                    detail="not in the baseline (run --update-baseline)"))
            continue
        before = [s / r for s, r in zip(base["seconds"], base["reference"])]
        is_slower, ratio, slower_p = slower(now, before)
        faster_p = float(mannwhitneyu(now, before, alternative="less").pvalue)
        status, p = "ok", slower_p
        if is_slower:
            status = "SLOWER"
        elif 1 / ratio - 1 > min_effect and faster_p < alpha:
            status, p = "faster", faster_p
        ratios[e.key], befores[e.key] = ratio, before
        verdicts.append(Verdict(e.key, status, ratio, p, _median(e.seconds),
                                _median(base["seconds"])))
    by_case = {}
    for key, ratio in ratios.items():
        by_case.setdefault(key.rsplit("/", 1)[0], {})[key] = ratio
    normalized = {e.key: e.normalized for e in entries}
    for i, vd in enumerate(verdicts):
        mates = [r for k, r in by_case.get(vd.key.rsplit("/", 1)[0], {}).items() if k != vd.key]
        if vd.status != "SLOWER" or not mates:
            continue
        shift = _median(mates)
        is_slower, ratio, p = slower(normalized[vd.key], befores[vd.key], shift)
        if not is_slower:
            verdicts[i] = Verdict(vd.key, "shared", vd.ratio, vd.p, vd.now, vd.base,
                                  f"its case mates {shift:.2f}x: {ratio:.2f}x of theirs")
    for key in base_entries:
        if key not in seen:
            verdicts.append(Verdict(key, "missing", detail="in the baseline, not measured in this run"))
    return verdicts


# -------------------------------------------------------------------- baseline file


def baseline_document(entries: list[Entry], suite: str, kind: str, meta: dict,
                      samples: int) -> dict:
    return {
        "schema": SCHEMA, "version": VERSION, "suite": suite, "kind": kind,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": meta, "samples": samples,
        "reference": "scipy.ndimage.correlate 256x256 float64, 5x5 kernel, mode='reflect'",
        "entries": {e.key: {"seconds": e.seconds, "reference": e.reference,
                            "median_normalized": _median(e.normalized)}
                    for e in entries if e.status == "pass" and e.seconds},
    }


def load_baseline(path: Path, suite: str) -> dict:
    path = Path(path)
    if not path.exists():
        raise GateError(f"no baseline at {path} (machine kind {path.stem}): "
                        f"run `convbench gate --suite {suite} --update-baseline` on this kind of machine")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GateError(f"corrupt baseline {path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise GateError(f"corrupt baseline {path}: not a {SCHEMA} file")
    if doc.get("version") != VERSION:
        raise GateError(f"baseline {path} has version {doc.get('version')}; this gate reads {VERSION}")
    if doc.get("suite") != suite:
        raise GateError(f"baseline {path} is for suite {doc.get('suite')!r}, not {suite!r}")
    entries = doc.get("entries")
    if not isinstance(entries, dict):
        raise GateError(f"corrupt baseline {path}: no entries")
    for key, value in entries.items():
        problem = _bad_times(value)
        if problem:
            raise GateError(f"invalid baseline {path}: entry {key!r} {problem}")
    return doc


def _is_time(x) -> bool:
    """A finite number of seconds > 0. JSON gives bools (True is an int to Python) and
    Infinity/NaN (json.loads accepts them) that would compare as times."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(x) and x > 0
    except OverflowError:  # an integer too large for a float
        return False


def _bad_times(value) -> str | None:
    """Why a baseline entry cannot be compared with (None when it can)."""
    if not isinstance(value, dict):
        return f"is {type(value).__name__}, not an object with 'seconds' and 'reference'"
    for name in ("seconds", "reference"):
        times = value.get(name)
        if not isinstance(times, list):
            return f"has no {name!r} list of per-sample times"
        if len(times) < 3:
            return f"has {len(times)} {name!r} samples; at least 3 are needed"
        bad = [x for x in times if not _is_time(x)]
        if bad:
            return f"has {name!r} time {bad[0]!r}: each must be a finite number of seconds > 0"
    if len(value["seconds"]) != len(value["reference"]):
        return (f"has {len(value['seconds'])} 'seconds' but {len(value['reference'])} 'reference' "
                "samples; they are taken in pairs")
    return None


# ------------------------------------------------------------------------ report


def format_report(verdicts: list[Verdict], con=None) -> str:
    """The verdicts as a table, worst first: for ``con`` (convbench.table.console: rich on a
    terminal), plain columns without one."""
    from convbench.table import format_seconds, format_table, render

    order = {"WRONG": 0, "SLOWER": 1, "shared": 2, "unconfirmed": 3, "missing": 4, "new": 5,
             "faster": 6, "ok": 7, "skipped": 8}
    rows = []
    for vd in sorted(verdicts, key=lambda vd: (order.get(vd.status, 9), vd.key)):
        rows.append({
            "status": vd.status, "op/case/candidate": vd.key,
            "now": format_seconds(vd.now), "baseline": format_seconds(vd.base),
            "ratio": "" if math.isnan(vd.ratio) else f"{vd.ratio:.2f}x",
            "p": "" if math.isnan(vd.p) else f"{vd.p:.2g}",
            "note": vd.detail[:80],
        })
    right = ("now", "baseline", "ratio", "p")
    if con is None:
        return format_table(rows, align_right=right)
    return render(rows, con, right=right, fold=("op/case/candidate",), cut=("note",), status=("status",))


def _names(verdicts: list[Verdict], limit: int) -> str:
    more = len(verdicts) - limit
    return ", ".join(vd.key for vd in verdicts[:limit]) + (f" and {more} more" if more > 0 else "")


def decide(verdicts: list[Verdict], min_effect: float, alpha: float,
           allow_missing: bool = False) -> tuple[int, str]:
    """(exit code, reason): wrong (2) before missing (3, unless ``allow_missing``) before
    slower (1); nothing compared is 3 (see the module docstring)."""
    wrong = [vd for vd in verdicts if vd.status == "WRONG"]
    missing = [vd for vd in verdicts if vd.status == "missing"]
    slower = [vd for vd in verdicts if vd.status == "SLOWER"]
    compared = [vd for vd in verdicts if vd.status in ("ok", "SLOWER", "shared", "unconfirmed", "faster")]
    if wrong:
        return EXIT_WRONG, (f"FAIL (wrong result): {len(wrong)} candidate(s) failed verification: "
                            f"{_names(wrong, 3)}")
    if missing and not allow_missing:
        return EXIT_HARNESS, (f"ERROR (missing timings): {len(missing)} baseline timing(s) not measured "
                              f"in this run: {_names(missing, 6)} (--allow-missing accepts this)")
    if slower:
        worst = max(slower, key=lambda vd: vd.ratio)
        return EXIT_SLOWER, (f"FAIL (slower): {len(slower)} of {len(compared)} timings slower than the "
                             f"baseline by > {min_effect:.0%} with p < {alpha:g}; worst {worst.key} "
                             f"{worst.ratio:.2f}x")
    if not compared:
        return EXIT_HARNESS, "ERROR: nothing was compared with the baseline (no timed candidate in it)"
    unconfirmed = sum(vd.status == "unconfirmed" for vd in verdicts)
    shared = sum(vd.status == "shared" for vd in verdicts)
    note = f"; {unconfirmed} flagged once, not confirmed by a second measurement" if unconfirmed else ""
    note += f"; {shared} slower only as much as their case mates" if shared else ""
    note += f"; {len(missing)} baseline timing(s) missing (allowed)" if missing else ""
    return EXIT_PASS, (f"PASS: {len(compared)} timings within {min_effect:.0%} of the baseline "
                       f"(or not significant at p < {alpha:g}){note}")


# ----------------------------------------------------------------------- running


def _check_names(names) -> None:
    if not names:
        return
    from convbench import registry

    known = {c.name for op in registry.ops() for c in registry.candidates(op)}
    unknown = sorted(set(names) - known)
    if unknown:
        raise GateError(f"unknown candidate(s) {unknown}; accepted: {', '.join(sorted(known))}")


def _import_gpu_library() -> None:
    """The machine kind names the GPU, which machine.metadata reads through torch: import it
    (when installed) before asking, so the kind is the same before and after a run."""
    try:
        import torch  # noqa: F401
    except Exception:
        pass


def _libraries(cases, names) -> set[str]:
    """The libraries of the candidates the gate runs: thread_settings.threads sets the
    count only of libraries imported before it starts (candidates import theirs lazily)."""
    from convbench import registry
    from convbench.thread_settings import libraries_of

    return libraries_of(c for op in {case.spec.op for case in cases}
                        for c in registry.candidates(op) if not names or c.name in names)


def confirm_slower(verdicts: list[Verdict], cases, baseline: dict, min_effect: float,
                   alpha: float, samples: int, sample_s: float, candidates=None, *,
                   isolate: bool = True, timeout: float | None = None,
                   slow_call_s: float = SLOW_CALL_S) -> list[Verdict]:
    """Measure every case with a flagged candidate again (all its candidates, with the
    reference: the case-mates rule needs them) and keep the flag only when the new samples
    are slower by the same test. A shared machine has bursts of load that one measurement
    cannot tell from a regression; a real one shows twice."""
    by_id = {case.id: case for case in cases}
    flagged_cases = {vd.key.split("/", 2)[1] for vd in verdicts if vd.status == "SLOWER"}
    again = {}
    for case_id in flagged_cases:
        entries = measure_suite([by_id[case_id]], candidates, samples=samples, sample_s=sample_s,
                                slow_call_s=slow_call_s, isolate=isolate, timeout=timeout)
        measured = {e.key: e for e in entries}
        for vd in compare(entries, baseline, min_effect, alpha):
            if vd.key in measured:
                again[vd.key] = (measured[vd.key], vd)
    out = []
    for vd in verdicts:
        if vd.status != "SLOWER":
            out.append(vd)
            continue
        entry, second = again.get(vd.key, (None, None))
        if entry is None or entry.status != "pass":
            status = "WRONG" if entry is not None and entry.status in ("FAIL", "error") else vd.status
            out.append(Verdict(vd.key, status, vd.ratio, vd.p, vd.now, vd.base,
                               entry.detail if entry is not None else vd.detail))
            continue
        if second.status == "SLOWER":
            out.append(Verdict(vd.key, "SLOWER", second.ratio, max(vd.p, second.p), second.now,
                               vd.base, f"confirmed: {vd.ratio:.2f}x then {second.ratio:.2f}x"))
        elif second.status == "shared":
            out.append(Verdict(vd.key, "shared", second.ratio, second.p, second.now, vd.base,
                               f"{vd.ratio:.2f}x, then {second.detail}"))
        else:
            out.append(Verdict(vd.key, "unconfirmed", second.ratio, second.p, second.now, vd.base,
                               f"{vd.ratio:.2f}x (p {vd.p:.2g}), then {second.ratio:.2f}x: noise"))
    return out


def _described(exc: BaseException) -> str:
    """An unexpected exception in one line: its type, message and innermost place."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    text = str(exc)
    return f"{type(exc).__name__}{': ' + text if text else ''}{where}"


def _exit_code_always(gate_run: Callable[..., int]) -> Callable[..., int]:
    """Every way the gate can end maps to an exit code with a one-line reason, never a
    traceback: CI reads 0 from a gate that died in SystemExit(0) as a pass."""

    @functools.wraps(gate_run)
    def guarded(*args, out=None, **kwargs) -> int:
        out = out or sys.stdout
        try:
            return gate_run(*args, out=out, **kwargs)
        except (GateError, ValueError) as exc:  # usage: unknown names, bad targets, bad baseline
            reason = str(exc)
        except BaseException as exc:  # noqa: BLE001 - whatever it was, the exit code must say so
            reason = f"stopped by {_described(exc)}"
        print(f"convbench gate: ERROR (exit {EXIT_HARNESS}): {reason}", file=out)
        return EXIT_HARNESS

    return guarded


def _in_scope(doc: dict, candidates) -> dict:
    """The baseline without the entries of candidates left out with --candidate: those
    are not measured on purpose, not missing."""
    if not candidates:
        return doc
    entries = {key: value for key, value in doc["entries"].items()
               if key.rsplit("/", 1)[-1] in candidates}
    return {**doc, "entries": entries}


@_exit_code_always
def run(suite: str = "gate", baseline: str | Path | None = None, update: bool = False,
        min_effect: float = DEFAULT_MIN_EFFECT, alpha: float = DEFAULT_ALPHA,
        samples: int = DEFAULT_SAMPLES, candidates=None, sample_s: float = DEFAULT_SAMPLE_S,
        threads: int | None = DEFAULT_THREADS, confirm: bool = True, allow_missing: bool = False,
        isolate: bool = True, timeout: float | None = None, out=None) -> int:
    """The gate; returns the exit code (it never raises) and prints the reason and the
    table to ``out``. ``allow_missing``: baseline timings not measured now do not fail.
    ``isolate``/``timeout``: candidates run in a worker process, each call limited to
    ``timeout`` seconds (convbench.runner)."""

    from convbench.progress import Progress
    from convbench.table import console, status_text

    con = console(out)

    def say(text=""):   # a reason: its status words coloured on a terminal
        print(status_text(text, con), file=out)

    def report(verdicts):
        print(format_report(verdicts, con), file=out)

    if not min_effect > 0:
        raise GateError(f"--min-effect must be > 0, got {min_effect}")
    if not 0 < alpha < 1:
        raise GateError(f"--alpha must be in (0, 1), got {alpha}")
    if samples < 7:
        raise GateError(f"--samples must be >= 7, got {samples}")
    from convbench import machine, thread_settings
    from convbench.results import check_writable, write_atomic

    cases = suite_cases(suite)
    _check_names(candidates)
    _import_gpu_library()
    kind = machine_kind(machine.metadata(threads))
    path = Path(baseline) if baseline else default_baseline(kind)
    if update:  # before measuring: a baseline that cannot be written fails now, not after
        check_writable(path, "baseline")
    doc = None if update else _in_scope(load_baseline(path, suite), candidates)
    libraries = _libraries(cases, candidates)
    slow_call_s = SLOW_CALL_S if update else max(
        [SLOW_CALL_S] + [SLOW_MARGIN * _median(e["seconds"]) for e in doc["entries"].values()])
    started = time.perf_counter()
    with thread_settings.threads(threads, libraries=libraries) as n, \
            Progress(len(cases), "gate") as progress:
        entries = measure_suite(cases, candidates, samples=samples, sample_s=sample_s,
                                slow_call_s=slow_call_s, progress=progress, isolate=isolate,
                                timeout=timeout)
    seconds = time.perf_counter() - started
    meta = machine.metadata(n)

    if update:
        wrong = [e for e in entries if e.status in ("FAIL", "error")]
        verdicts = [Verdict(e.key, "WRONG" if e in wrong else ("baseline" if e.seconds else "skipped"),
                            now=_median(e.seconds), detail=e.detail if not e.seconds else "")
                    for e in entries]
        if wrong:
            say(f"convbench gate: FAIL (exit {EXIT_WRONG}): {len(wrong)} candidate(s) failed "
                f"verification; baseline {path} not written")
            report(verdicts)
            return EXIT_WRONG
        document = baseline_document(entries, suite, kind, meta, samples)
        write_atomic(path, json.dumps(document, indent=1) + "\n")
        say(f"convbench gate: baseline written to {path} ({len(document['entries'])} timings, "
            f"suite {suite}, kind {kind}, {seconds:.0f} s)")
        report(verdicts)
        return EXIT_PASS

    verdicts = compare(entries, doc, min_effect, alpha)
    if confirm and any(vd.status == "SLOWER" for vd in verdicts):
        started = time.perf_counter()
        with thread_settings.threads(threads, libraries=libraries):
            verdicts = confirm_slower(verdicts, cases, doc, min_effect, alpha, samples, sample_s,
                                      candidates, isolate=isolate, timeout=timeout,
                                      slow_call_s=slow_call_s)
        seconds += time.perf_counter() - started
    code, reason = decide(verdicts, min_effect, alpha, allow_missing)
    say(f"convbench gate: {reason} (exit {code}; suite {suite}, baseline {path}, {seconds:.0f} s)")
    report(verdicts)
    return code


def add_arguments(parser) -> None:
    from convbench.cli import thread_count, timeout_seconds

    parser.add_argument("--suite", default="gate", help=f"gate suite: {', '.join(SUITES)} (default gate)")
    parser.add_argument("--baseline", default=None,
                        help="baseline file (default results/baselines/<machine kind>.json)")
    parser.add_argument("--update-baseline", action="store_true",
                        help="measure and write the baseline (atomically) instead of comparing")
    parser.add_argument("--min-effect", type=float, default=DEFAULT_MIN_EFFECT,
                        help="smallest slowdown that fails, as a fraction (default 0.25 = 25%%)")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help="significance level of the one-sided Mann-Whitney U test (default 0.01)")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                        help=f"timed samples per candidate (default {DEFAULT_SAMPLES}, at least 7)")
    parser.add_argument("--no-confirm", action="store_true",
                        help="fail on the first measurement (default: re-measure what looks slower)")
    parser.add_argument("--candidate", action="append", help="only these candidates (comma separated)")
    parser.add_argument("--threads", type=thread_count, default=DEFAULT_THREADS,
                        help=f"threads for every library (default {DEFAULT_THREADS}; 0 = all cores)")
    parser.add_argument("--allow-missing", action="store_true",
                        help="baseline timings that cannot be measured now (candidate unavailable, "
                             "unsupported, slow) are listed, not a harness error (exit 3)")
    parser.add_argument("--timeout", type=timeout_seconds, default=None, metavar="SECONDS",
                        help="seconds one candidate call may take (default 300)")
    parser.add_argument("--no-isolate", action="store_true",
                        help="run candidates in this process (default: a worker process, so a "
                             "crash or hang fails only its entry)")


def run_args(args) -> int:
    names = [n for v in (args.candidate or []) for n in v.split(",") if n] or None
    return run(suite=args.suite, baseline=args.baseline, update=args.update_baseline,
               min_effect=args.min_effect, alpha=args.alpha, samples=args.samples,
               candidates=names, threads=args.threads or None, confirm=not args.no_confirm,
               allow_missing=args.allow_missing, isolate=not args.no_isolate,
               timeout=args.timeout)


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="convbench gate", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
