"""convbench gate: exit codes on planted slowdowns and wrong results, baseline handling,
the machine-kind rule and the decision rule (effect size AND significance).

The end-to-end runs use the 'tiny' gate suite (one 192x192 case), two candidates and 15
samples of 10 ms. They run the real gate (verification, timing.measure, normalisation,
compare, confirmation, report) on a virtual clock: the candidates and the reference
workload are really called, but the time the gate reads advances only by a fixed cost per
call times seeded noise, so a busy machine cannot change a verdict. The same runs on the
real clock are marked slow (run them with -m slow on a quiet machine).
"""
from __future__ import annotations

import importlib
import io
import json
import random
import re
import statistics
import time

import numpy as np
import pytest

from convbench import cli, gate, timing

TINY = dict(suite="tiny", samples=15, sample_s=0.01, candidates=["ndimage_scipy", "shift_add_numpy"])

# virtual seconds per call; the reference is gate.reference_workload
COSTS = {"ndimage_scipy": 1.0e-3, "shift_add_numpy": 0.5e-3, "reference": 2.0e-3}
NOISE = 0.03   # sigma of the per-call log-normal factor: per-sample noise ~1% after the loops


def run_gate(**kwargs):
    out = io.StringIO()
    code = gate.run(out=out, **{**TINY, **kwargs})
    return code, out.getvalue()


def ndimage_module():
    return importlib.import_module("candidates.correlate.ndimage_scipy")


class VirtualClock:
    """Stands in for the ``time`` module of convbench.timing and convbench.gate: perf_counter
    reads virtual seconds, which only a charged call advances; everything else is real."""

    def __init__(self, seed: int):
        self.now = 0.0
        self.costs = dict(COSTS)
        self.rng = random.Random(seed)

    def perf_counter(self) -> float:
        return self.now

    def __getattr__(self, name):   # strftime, gmtime for the baseline's "created"
        return getattr(time, name)

    def charge(self, name, fn):
        def charged(*args, **kwargs):
            self.now += self.costs[name] * self.rng.lognormvariate(0.0, NOISE)
            return fn(*args, **kwargs)
        return charged


def install_clock(mp: pytest.MonkeyPatch, seed: int) -> VirtualClock:
    clock = VirtualClock(seed)
    mp.setattr(timing, "time", clock)
    mp.setattr(gate, "time", clock)
    for name in TINY["candidates"]:
        module = importlib.import_module(f"candidates.correlate.{name}")
        mp.setattr(module, "correlate", clock.charge(name, module.correlate))
    # the normalisation must read the same clock, or the A/A ratio is real time over virtual
    reference_workload = gate.reference_workload
    mp.setattr(gate, "reference_workload", lambda: clock.charge("reference", reference_workload()))
    return clock


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    path = tmp_path_factory.mktemp("gate") / "tiny.json"
    with pytest.MonkeyPatch.context() as mp:   # the monkeypatch fixture is function-scoped
        install_clock(mp, seed=0)
        code, text = run_gate(update=True, baseline=path)
    assert code == gate.EXIT_PASS, text
    return path


@pytest.fixture
def clock(monkeypatch, request):
    """A virtual clock with its own seed per test: a verdict does not depend on test order."""
    return install_clock(monkeypatch, seed=sum(map(ord, request.node.name)))


def plant_twice(monkeypatch):
    module = ndimage_module()
    original = module.correlate

    def twice(*args, **kwargs):  # the same result, twice the work
        original(*args, **kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "correlate", twice)


def assert_one_confirmed_slower(code, text):
    assert code == gate.EXIT_SLOWER, text
    first = text.splitlines()[0]
    assert "FAIL (slower)" in first and "ndimage_scipy" in first
    slower = [line for line in text.splitlines() if line.startswith("SLOWER")]
    assert len(slower) == 1 and "ndimage_scipy" in slower[0], text


def verdict(text, candidate):
    """(status, ratio, p, note) of the candidate's row in the gate's report table."""
    [match] = re.finditer(rf"^(\S+) +\S+/{candidate} .*? (\d+\.\d+)x +(\S+) *(.*)$", text, re.MULTILINE)
    status, ratio, p, note = match.groups()
    return status, float(ratio), float(p), note


# ------------------------------------------------------------------------ end to end


def test_baseline_holds_per_sample_times(baseline):
    doc = json.loads(baseline.read_text())
    assert doc["schema"] == gate.SCHEMA and doc["suite"] == "tiny"
    assert doc["kind"] == gate.machine_kind(doc["machine"])
    keys = sorted(doc["entries"])
    assert len(keys) == 2 and keys[0].endswith("/ndimage_scipy") and keys[1].endswith("/shift_add_numpy")
    for entry in doc["entries"].values():
        assert len(entry["seconds"]) == len(entry["reference"]) == 15
        assert all(s > 0 for s in entry["seconds"] + entry["reference"])
    # the virtual costs came through timing.measure: ndimage 1 ms, shift_add 0.5 ms, reference 2 ms
    ndimage, shift_add = (doc["entries"][key] for key in keys)
    assert np.median(ndimage["seconds"]) == pytest.approx(1e-3, rel=0.05)
    assert np.median(shift_add["seconds"]) == pytest.approx(0.5e-3, rel=0.05)
    assert np.median(ndimage["reference"]) == pytest.approx(2e-3, rel=0.05)


def test_unchanged_code_passes(baseline, clock):
    """A/A on the tiny suite: the same code against its own baseline (other noise draws)."""
    code, text = run_gate(baseline=baseline)
    assert code == gate.EXIT_PASS, text
    assert text.startswith("convbench gate: PASS: 2 timings")
    for name in TINY["candidates"]:
        status, ratio, _, _ = verdict(text, name)
        assert status == "ok" and ratio == pytest.approx(1, abs=0.05), text


def test_planted_slowdown_exits_1(baseline, clock, monkeypatch):
    plant_twice(monkeypatch)
    code, text = run_gate(baseline=baseline)
    assert_one_confirmed_slower(code, text)
    note = verdict(text, "ndimage_scipy")[3]   # measured twice, 2x both times
    first, second = map(float, re.fullmatch(r"confirmed: (\S+)x then (\S+)x", note).groups())
    assert first == pytest.approx(2, abs=0.1) and second == pytest.approx(2, abs=0.1), text


def test_a_small_significant_change_passes(baseline, clock):
    """5% slower is significant with ~1% noise, but below the 25% minimum effect."""
    clock.costs["ndimage_scipy"] *= 1.05
    code, text = run_gate(baseline=baseline)
    assert code == gate.EXIT_PASS, text
    status, ratio, p, _ = verdict(text, "ndimage_scipy")
    assert status == "ok" and ratio == pytest.approx(1.05, abs=0.02) and p < 0.01, text


def test_a_machine_uniformly_slower_today_passes(baseline, clock):
    """Candidates and reference all 1.8x slower: the normalisation cancels it."""
    for name in clock.costs:
        clock.costs[name] *= 1.8
    code, text = run_gate(baseline=baseline)
    assert code == gate.EXIT_PASS, text
    assert all(verdict(text, name)[0] == "ok" for name in TINY["candidates"]), text


def test_a_burst_that_does_not_recur_is_unconfirmed(baseline, clock, monkeypatch):
    """ndimage_scipy is 2x slower during the first measurement only: flagged, re-measured,
    not confirmed, and the gate passes."""
    measure_suite = gate.measure_suite

    def burst_then_calm(*args, **kwargs):
        try:
            return measure_suite(*args, **kwargs)
        finally:
            clock.costs["ndimage_scipy"] = COSTS["ndimage_scipy"]

    clock.costs["ndimage_scipy"] *= 2
    monkeypatch.setattr(gate, "measure_suite", burst_then_calm)
    code, text = run_gate(baseline=baseline)
    assert code == gate.EXIT_PASS, text
    assert "1 flagged once, not confirmed" in text.splitlines()[0]
    status, _, _, note = verdict(text, "ndimage_scipy")
    assert status == "unconfirmed" and note.endswith("noise"), text


def test_a_case_slower_as_a_whole_is_shared_not_failed(baseline, clock):
    """Both candidates of the case 1.6x slower, the reference not (a neighbour slowing
    memory-bound work): the slowdown is the case's, the gate passes and says so."""
    for name in TINY["candidates"]:
        clock.costs[name] *= 1.6
    code, text = run_gate(baseline=baseline)
    assert code == gate.EXIT_PASS, text
    assert "2 slower only as much as their case mates" in text.splitlines()[0], text
    for name in TINY["candidates"]:
        status, ratio, _, note = verdict(text, name)
        assert status == "shared" and ratio == pytest.approx(1.6, abs=0.05), text
        mates = float(re.search(r"case mates (\S+)x", note).group(1))
        assert mates == pytest.approx(1.6, abs=0.05), text


def test_a_regression_on_top_of_a_slower_case_still_fails(baseline, clock, monkeypatch):
    """The case 1.4x slower as a whole, and ndimage_scipy's own work doubled on top."""
    for name in TINY["candidates"]:
        clock.costs[name] *= 1.4
    plant_twice(monkeypatch)
    code, text = run_gate(baseline=baseline)
    assert_one_confirmed_slower(code, text)
    assert verdict(text, "shift_add_numpy")[0] == "shared", text   # 1.4x: the case's


def test_planted_wrong_result_exits_2(baseline, clock, monkeypatch):
    module = ndimage_module()
    original = module.correlate
    monkeypatch.setattr(module, "correlate", lambda *a, **k: original(*a, **k) + 0.5)
    code, text = run_gate(baseline=baseline)
    assert code == gate.EXIT_WRONG, text
    assert "FAIL (wrong result)" in text.splitlines()[0]
    assert any(line.startswith("WRONG") and "ndimage_scipy" in line for line in text.splitlines())


def test_crashing_candidate_is_a_wrong_result(baseline, clock, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("segfault-like")

    monkeypatch.setattr(ndimage_module(), "correlate", crash)
    code, text = run_gate(baseline=baseline)
    assert code == gate.EXIT_WRONG, text


def test_wrong_result_never_becomes_a_baseline(tmp_path, clock, monkeypatch):
    module = ndimage_module()
    original = module.correlate
    monkeypatch.setattr(module, "correlate", lambda *a, **k: -original(*a, **k))
    path = tmp_path / "b.json"
    code, text = run_gate(update=True, baseline=path)
    assert code == gate.EXIT_WRONG, text
    assert not path.exists()


# ------------------------------------------------------------------ on the real clock


@pytest.fixture(scope="module")
def real_baseline(tmp_path_factory):
    path = tmp_path_factory.mktemp("gate-real") / "tiny.json"
    code, text = run_gate(update=True, baseline=path)
    assert code == gate.EXIT_PASS, text
    return path


@pytest.mark.slow
def test_unchanged_code_passes_on_the_real_clock(real_baseline):
    """A/A timed for real: can fail on a busy machine, hence slow (run on a quiet one)."""
    code, text = run_gate(baseline=real_baseline)
    assert code == gate.EXIT_PASS, text


@pytest.mark.slow
def test_planted_slowdown_exits_1_on_the_real_clock(real_baseline, monkeypatch):
    plant_twice(monkeypatch)
    assert_one_confirmed_slower(*run_gate(baseline=real_baseline))


# ------------------------------------------------------------------ harness errors: 3


def test_missing_baseline_exits_3(tmp_path):
    code, text = run_gate(baseline=tmp_path / "nope.json")
    assert code == gate.EXIT_HARNESS
    assert "no baseline at" in text and "--update-baseline" in text
    assert len(text.strip().splitlines()) == 1


@pytest.mark.parametrize("content, reason", [
    ("{not json", "corrupt baseline"),
    ('{"schema": "something-else"}', "corrupt baseline"),
    ('{"schema": "convbench-gate-baseline", "version": 1, "suite": "tiny", "entries": '
     '{"a/b/c": {"seconds": [1, -1, 1], "reference": [1, 1, 1]}}}', "entry 'a/b/c' has 'seconds' time -1"),
    ('{"schema": "convbench-gate-baseline", "version": 1, "suite": "gate", "entries": {}}',
     "is for suite 'gate'"),
    ('{"schema": "convbench-gate-baseline", "version": 99, "suite": "tiny", "entries": {}}',
     "version 99"),
])
def test_corrupt_baseline_exits_3(tmp_path, content, reason):
    path = tmp_path / "bad.json"
    path.write_text(content)
    code, text = run_gate(baseline=path)
    assert code == gate.EXIT_HARNESS, text
    assert reason in text


def test_unknown_suite_exits_3(tmp_path, capsys):
    code, text = run_gate(suite="nope", baseline=tmp_path / "x.json")
    assert code == gate.EXIT_HARNESS and "unknown gate suite 'nope'" in text
    assert cli.main(["gate", "--suite", "nope"]) == gate.EXIT_HARNESS
    assert "accepted: gate, tiny" in capsys.readouterr().out


def test_usage_errors_exit_3(tmp_path, capsys):
    assert run_gate(baseline=tmp_path / "x.json", candidates=["no_such"])[0] == gate.EXIT_HARNESS
    assert run_gate(baseline=tmp_path / "x.json", samples=3)[0] == gate.EXIT_HARNESS
    assert run_gate(baseline=tmp_path / "x.json", alpha=2.0)[0] == gate.EXIT_HARNESS
    assert cli.main(["gate", "--alpha", "not-a-number"]) == gate.EXIT_HARNESS
    assert cli.main(["gate", "--bogus"]) == gate.EXIT_HARNESS


# ------------------------------------------------- what cannot be measured, and never a traceback


@pytest.fixture
def measured(monkeypatch):
    """Records every call of gate.measure_suite (and lets it run)."""
    calls, measure_suite = [], gate.measure_suite

    def recording(*args, **kwargs):
        calls.append(args)
        return measure_suite(*args, **kwargs)

    monkeypatch.setattr(gate, "measure_suite", recording)
    return calls


def make_unavailable(monkeypatch, module):
    """As if the candidate's library were not installed (OpenCV missing on a CI image)."""
    monkeypatch.setattr(module, "LIBRARY", "no_such_library_for_the_gate_test")


def test_a_candidate_missing_now_exits_3_naming_it(baseline, clock, monkeypatch):
    make_unavailable(monkeypatch, ndimage_module())
    code, text = run_gate(baseline=baseline)
    assert code == gate.EXIT_HARNESS, text
    first = text.splitlines()[0]
    assert "ERROR (missing timings)" in first and "/ndimage_scipy" in first and "--allow-missing" in first
    [row] = [line for line in text.splitlines() if "/ndimage_scipy" in line and line.startswith("missing")]
    assert "unavailable" in row and "no_such_library" in row


def test_allow_missing_lists_it_and_passes(baseline, clock, monkeypatch):
    make_unavailable(monkeypatch, ndimage_module())
    code, text = run_gate(baseline=baseline, allow_missing=True)
    assert code == gate.EXIT_PASS, text
    assert "1 baseline timing(s) missing (allowed)" in text.splitlines()[0]
    assert verdict(text, "shift_add_numpy")[0] == "ok"
    assert any(line.startswith("missing") and "/ndimage_scipy" in line for line in text.splitlines())


def test_allow_missing_is_a_flag(monkeypatch):
    seen = {}
    monkeypatch.setattr(gate, "run", lambda **kwargs: seen.update(kwargs) or gate.EXIT_PASS)
    assert cli.main(["gate", "--suite", "tiny", "--allow-missing"]) == gate.EXIT_PASS
    assert seen["allow_missing"] is True
    assert cli.main(["gate", "--suite", "tiny"]) == gate.EXIT_PASS and seen["allow_missing"] is False


def test_candidates_left_out_on_purpose_are_not_missing(baseline, clock):
    code, text = run_gate(baseline=baseline, candidates=["shift_add_numpy"])
    assert code == gate.EXIT_PASS, text
    assert "ndimage_scipy" not in text


@pytest.mark.parametrize("literal, shown", [
    ("Infinity", "inf"), ("-Infinity", "-inf"), ("NaN", "nan"), ("true", "True"), ("-0.001", "-0.001"),
    ("0", "0"), ('"0.001"', "'0.001'"), ("null", "None"), ("1" + "0" * 400, "1000"),
])
def test_a_baseline_time_that_is_not_a_time_exits_3_before_measuring(baseline, tmp_path, measured,
                                                                     literal, shown):
    doc = json.loads(baseline.read_text())
    key = sorted(doc["entries"])[1]
    doc["entries"][key]["seconds"][4] = "PLACEHOLDER"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc).replace('"PLACEHOLDER"', literal))
    code, text = run_gate(baseline=path)
    assert code == gate.EXIT_HARNESS, text
    assert f"entry {key!r} has 'seconds' time {shown}" in text, text
    assert measured == [] and len(text.strip().splitlines()) == 1


@pytest.mark.parametrize("change, message", [
    (lambda e: e["reference"].pop(), "15 'seconds' but 14 'reference' samples"),
    (lambda e: e.update(seconds=e["seconds"][:2], reference=e["reference"][:2]), "2 'seconds' samples"),
    (lambda e: e.pop("reference"), "no 'reference' list"),
    (lambda e: e["reference"].__setitem__(0, False), "'reference' time False"),
])
def test_a_baseline_entry_of_the_wrong_shape_exits_3_before_measuring(baseline, tmp_path, measured,
                                                                      change, message):
    doc = json.loads(baseline.read_text())
    key = sorted(doc["entries"])[0]
    change(doc["entries"][key])
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    code, text = run_gate(baseline=path)
    assert code == gate.EXIT_HARNESS and repr(key) in text and message in text, text
    assert measured == []


@pytest.mark.parametrize("stop", [SystemExit(0), SystemExit(2), KeyboardInterrupt()])
def test_a_candidate_that_stops_the_process_is_not_a_pass(baseline, clock, monkeypatch, stop):
    def stopping(*args, **kwargs):
        raise stop

    monkeypatch.setattr(ndimage_module(), "correlate", stopping)
    code, text = run_gate(baseline=baseline)
    assert code in (gate.EXIT_WRONG, gate.EXIT_HARNESS), text
    assert type(stop).__name__ in text and "Traceback" not in text


@pytest.mark.parametrize("where", ["measure_suite", "compare", "format_report"])
def test_an_unexpected_exception_anywhere_exits_3_with_the_reason(baseline, clock, monkeypatch, where):
    def broken(*args, **kwargs):
        raise RuntimeError(f"broken {where}")

    monkeypatch.setattr(gate, where, broken)
    code, text = run_gate(baseline=baseline)
    assert code == gate.EXIT_HARNESS, text
    assert f"stopped by RuntimeError: broken {where} (at test_gate.py:" in text.splitlines()[-1]


def test_a_baseline_target_that_cannot_be_written_exits_3_before_measuring(tmp_path, measured):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target, reason in ((tmp_path, "is a folder"), (blocker / "sub" / "b.json", "is a file")):
        started = time.perf_counter()
        code, text = run_gate(update=True, baseline=target)
        assert code == gate.EXIT_HARNESS and reason in text and str(target) in text, text
        assert measured == [] and time.perf_counter() - started < 5
    assert cli.main(["gate", "--suite", "tiny", "--update-baseline", "--baseline", str(tmp_path)]) == 3
    assert measured == []


# ----------------------------------------------------------------- decision rule


def _doc(seconds, reference):
    return {"entries": {"correlate/c/x": {"seconds": list(seconds), "reference": list(reference)}}}


def _entry(seconds, reference):
    return gate.Entry("correlate", "c", "x", "pass", seconds=list(seconds), reference=list(reference))


@pytest.mark.parametrize("factor, noise, expected", [
    (2.0, 0.02, "SLOWER"),     # large and significant
    (1.10, 0.001, "ok"),       # significant but below the minimum effect
    (0.5, 0.02, "faster"),
    (1.0, 0.02, "ok"),
])
def test_effect_and_significance_both_needed(factor, noise, expected):
    rng = np.random.default_rng(1)
    ref = np.full(15, 1e-3)
    base = 1e-3 * (1 + noise * rng.standard_normal(15))
    now = factor * 1e-3 * (1 + noise * rng.standard_normal(15))
    [verdict] = gate.compare([_entry(now, ref)], _doc(base, ref))
    assert verdict.status == expected, verdict


def test_large_but_not_significant_passes():
    """Two samples each way cannot reach p < 0.01, however large the effect."""
    base, now = [1.0, 1.1, 0.9], [3.0, 0.8, 3.3]
    [verdict] = gate.compare([_entry(now, [1, 1, 1])], _doc(base, [1, 1, 1]))
    assert verdict.ratio > 1.25 and verdict.p >= 0.01 and verdict.status == "ok"


def test_normalisation_cancels_a_uniformly_slower_machine():
    rng = np.random.default_rng(2)
    base = 1e-3 * (1 + 0.01 * rng.standard_normal(15))
    ref = np.full(15, 2e-3)
    # everything, reference included, 1.8x slower today: no regression
    [verdict] = gate.compare([_entry(1.8 * base, 1.8 * ref)], _doc(base, ref))
    assert verdict.status == "ok" and abs(verdict.ratio - 1) < 1e-9


def test_new_and_missing_entries_are_reported():
    verdicts = gate.compare([gate.Entry("correlate", "c", "y", "pass", seconds=[1] * 7, reference=[1] * 7)],
                            _doc([1] * 7, [1] * 7))
    assert sorted(v.status for v in verdicts) == ["missing", "new"]
    code, reason = gate.decide(verdicts, 0.25, 0.01)
    assert code == gate.EXIT_HARNESS and "not measured" in reason and "correlate/c/x" in reason
    code, reason = gate.decide(verdicts, 0.25, 0.01, allow_missing=True)
    assert code == gate.EXIT_HARNESS and "nothing was compared" in reason


def test_an_unmeasurable_baseline_entry_is_missing_not_skipped():
    unavailable = gate.Entry("correlate", "c", "x", "unavailable", "unavailable: cv2 not importable")
    new_and_unavailable = gate.Entry("correlate", "c", "z", "unavailable", "unavailable: no GPU")
    verdicts = {vd.key: vd for vd in gate.compare([unavailable, new_and_unavailable], _doc([1] * 7, [1] * 7))}
    assert verdicts["correlate/c/x"].status == "missing" and "cv2" in verdicts["correlate/c/x"].detail
    assert verdicts["correlate/c/z"].status == "skipped"   # never in the baseline: nothing lost


@pytest.mark.parametrize("statuses, allow_missing, expected", [
    (["WRONG", "missing", "SLOWER", "ok"], False, gate.EXIT_WRONG),
    (["missing", "SLOWER", "ok"], False, gate.EXIT_HARNESS),
    (["missing", "SLOWER", "ok"], True, gate.EXIT_SLOWER),
    (["missing", "ok"], True, gate.EXIT_PASS),
])
def test_wrong_then_missing_then_slower(statuses, allow_missing, expected):
    verdicts = [gate.Verdict(f"correlate/c/{i}", status, ratio=2.0) for i, status in enumerate(statuses)]
    assert gate.decide(verdicts, 0.25, 0.01, allow_missing)[0] == expected


def test_wrong_wins_over_slower():
    verdicts = [gate.Verdict("a", "SLOWER", ratio=2.0), gate.Verdict("b", "WRONG")]
    assert gate.decide(verdicts, 0.25, 0.01)[0] == gate.EXIT_WRONG


# ------------------------------------------------------------------- machine kind


def test_machine_kind_rule():
    assert gate.machine_kind({"cpu": "AMD EPYC", "cores": 2, "gpu": None}) == "amd-epyc-2c"
    meta = {"cpu": "Intel(R) Xeon(R) Platinum 8480+", "cores": 16,
            "gpu": {"name": "NVIDIA H100 80GB HBM3"}}
    assert gate.machine_kind(meta) == "intel-r-xeon-r-platinum-8480-16c-nvidia-h100-80gb-hbm3"


def test_committed_baselines_load():
    files = sorted(gate.BASELINES_DIR.glob("*.json"))
    assert files, "no committed gate baseline in results/baselines/"
    for path in files:
        doc = gate.load_baseline(path, json.loads(path.read_text())["suite"])
        assert doc["kind"] == path.stem
        assert len(doc["entries"]) >= 10


def test_a_flag_not_confirmed_by_a_second_measurement_passes(monkeypatch):
    """A burst of load makes one measurement look 2x slower; the re-measurement does not."""
    base = [1e-3 * (1 + 0.01 * i) for i in range(15)]
    ref = [1e-3] * 15
    doc = _doc(base, ref)
    case = type("C", (), {"id": "c"})()
    first = gate.compare([_entry([2 * b for b in base], ref)], doc)
    assert first[0].status == "SLOWER"
    monkeypatch.setattr(gate, "measure_suite", lambda cases, names, **kw: [_entry(base, ref)])
    [verdict] = gate.confirm_slower(first, [case], doc, 0.25, 0.01, 15, 0.01)
    assert verdict.status == "unconfirmed" and "noise" in verdict.detail
    code, reason = gate.decide([verdict], 0.25, 0.01)
    assert code == gate.EXIT_PASS and "not confirmed" in reason
    monkeypatch.setattr(gate, "measure_suite", lambda cases, names, **kw: [_entry([2 * b for b in base], ref)])
    [verdict] = gate.confirm_slower(first, [case], doc, 0.25, 0.01, 15, 0.01)
    assert verdict.status == "SLOWER" and verdict.detail.startswith("confirmed")


def _case_entries(factors, case="c"):
    base = [1e-3 * (1 + 0.01 * i) for i in range(15)]
    ref = [1e-3] * 15
    doc = {"entries": {f"correlate/{case}/{name}": {"seconds": base, "reference": ref}
                       for name in factors}}
    entries = [gate.Entry("correlate", case, name, "pass", seconds=[f * b for b in base],
                          reference=list(ref)) for name, f in factors.items()]
    return entries, doc


@pytest.mark.parametrize("factors, expected", [
    ({"a": 1.5, "b": 1.5, "c": 1.5}, {"a": "shared", "b": "shared", "c": "shared"}),
    ({"a": 2.0, "b": 1.0, "c": 1.0}, {"a": "SLOWER", "b": "ok", "c": "ok"}),
    ({"a": 3.0, "b": 1.5, "c": 1.5}, {"a": "SLOWER", "b": "shared", "c": "shared"}),
    ({"a": 1.5, "b": 1.3}, {"a": "shared", "b": "shared"}),
    ({"a": 1.5}, {"a": "SLOWER"}),            # alone in its case: no mates, no excuse
    ({"a": 0.5, "b": 1.0, "c": 1.0}, {"a": "faster", "b": "ok", "c": "ok"}),
])
def test_case_mates_rule(factors, expected):
    entries, doc = _case_entries(factors)
    verdicts = {vd.key.rsplit("/", 1)[1]: vd.status for vd in gate.compare(entries, doc)}
    assert verdicts == expected


def test_case_mates_are_per_case():
    """A slower neighbouring case excuses nothing in another case."""
    slow, doc_slow = _case_entries({"a": 1.6, "b": 1.6}, case="c1")
    alone, doc_alone = _case_entries({"a": 1.6}, case="c2")
    doc = {"entries": {**doc_slow["entries"], **doc_alone["entries"]}}
    verdicts = {vd.key: vd.status for vd in gate.compare(slow + alone, doc)}
    assert verdicts == {"correlate/c1/a": "shared", "correlate/c1/b": "shared",
                        "correlate/c2/a": "SLOWER"}


def test_a_slow_candidate_is_verified_not_timed():
    cases = gate.suite_cases("tiny")
    entries = gate.measure_suite(cases, ["ndimage_scipy"], samples=7, sample_s=0.001, slow_call_s=0.0)
    [entry] = entries
    assert entry.status == "slow" and "not timed" in entry.detail and entry.seconds == []
    [verdict] = gate.compare(entries, _doc([1] * 7, [1] * 7)) [:1]
    assert verdict.status == "skipped"


def test_what_the_baseline_timed_is_timed_again_on_a_slower_machine(baseline, monkeypatch):
    """Comparing, the slow-call limit is SLOW_MARGIN x the slowest baseline timing (at least
    SLOW_CALL_S), so an entry near the limit is not 'missing' on a loaded machine; writing a
    baseline keeps SLOW_CALL_S."""
    seen = []
    measure_suite = gate.measure_suite

    def recording(*args, **kwargs):
        seen.append(kwargs["slow_call_s"])
        return measure_suite(*args, **kwargs)

    monkeypatch.setattr(gate, "measure_suite", recording)
    doc = json.loads(baseline.read_text())
    slowest = max(statistics.median(e["seconds"]) for e in doc["entries"].values())
    run_gate(baseline=baseline, confirm=False)
    assert seen == [max(gate.SLOW_CALL_S, gate.SLOW_MARGIN * slowest)]
    run_gate(baseline=baseline.with_name("new.json"), update=True)
    assert seen[-1] == gate.SLOW_CALL_S
