"""The asv suites (suites/): the frozen grid matches the registry and the case catalogue,
every class follows it, setup verifies before anything is timed and skips (asv:
NotImplementedError) with the reason, and `asv check` accepts the suite."""
from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import convbench
import suites
from convbench import asv_support, registry

ROOT = Path(__file__).resolve().parent.parent
GRID = suites.GRID
CASE = GRID["ops"]["correlate"]["time"][0]


def test_grid_is_up_to_date():
    assert asv_support.render(asv_support.build_grid()) == asv_support.GRID_PATH.read_text(), \
        "suites/grid.json is stale: run python -m convbench.asv_support"


def test_grid_is_small_and_covers_every_candidate():
    assert 0 < asv_support.combinations(GRID) <= asv_support.MAX_TIME_COMBINATIONS
    for op, entry in GRID["ops"].items():
        if entry["time"]:
            # ours: other installed packages' candidates are added by the suites at run time
            assert entry["candidates"] == [c.name for c in registry.candidates(op)
                                           if c.package is None], op
            assert set(entry["peakmem"]) <= set(entry["time"])
            assert set(entry["suites"]) == set(entry["time"])


def test_classes_follow_the_grid():
    families = {entry["family"] for entry in GRID["ops"].values()}
    modules = {family: importlib.import_module(f"suites.{family}") for family in families}
    outside = suites._outside_candidates()
    for op, entry in GRID["ops"].items():
        module = modules[entry["family"]]
        name = "".join(p.capitalize() for p in op.split("_"))
        if entry["time"]:
            cls = getattr(module, name)
            assert cls.params == [entry["candidates"] + outside.get(op, []), entry["time"]]
            assert cls.param_names == ["candidate", "case"]
            assert callable(getattr(cls, f"time_{op}"))
        else:
            assert not hasattr(module, name)
        if entry["peakmem"]:
            assert getattr(module, name + "Peakmem").params == [entry["candidates"] + outside.get(op, []),
                                                                entry["peakmem"]]
    assert modules["correlate"].Environment.params == [[suites.gpu_description()]]


def test_setup_verifies_then_one_call_is_timed(monkeypatch):
    from suites.correlate import Correlate

    module = importlib.import_module("candidates.correlate.ndimage_scipy")
    calls = []
    original = module.correlate
    monkeypatch.setattr(module, "correlate", lambda *a, **k: calls.append(1) or original(*a, **k))
    bench = Correlate()
    bench.setup("ndimage_scipy", CASE)
    assert calls == [1]                       # the verification call, in setup
    bench.time_correlate("ndimage_scipy", CASE)
    assert calls == [1, 1]                    # one call per timed sample
    with pytest.raises(NotImplementedError, match="GPU candidates only"):
        bench.prepared.device_seconds()
    bench.teardown("ndimage_scipy", CASE)


def _skip_reason(candidate="ndimage_scipy", case=CASE) -> str:
    from suites.correlate import Correlate

    with pytest.raises(NotImplementedError) as exc:
        Correlate().setup(candidate, case)
    return str(exc.value)


def test_wrong_result_is_skipped_not_timed(monkeypatch):
    module = importlib.import_module("candidates.correlate.ndimage_scipy")
    original = module.correlate
    monkeypatch.setattr(module, "correlate", lambda *a, **k: original(*a, **k) * 1.01)
    assert _skip_reason().startswith("wrong result: error")


def test_unknown_names_are_skipped():
    assert "not in this commit's registry" in _skip_reason(candidate="no_such_candidate")
    assert "not in this commit's catalogue" in _skip_reason(case="no-such-case")


def test_unavailable_candidate_is_skipped(monkeypatch):
    monkeypatch.setattr(registry.Candidate, "unavailable", lambda self: "unavailable: no GPU")
    assert _skip_reason() == "unavailable: no GPU"


def test_commit_without_harness_api_is_skipped(monkeypatch):
    monkeypatch.delattr(convbench, "verification")
    monkeypatch.setitem(sys.modules, "convbench.verification", None)
    assert "lacks the harness API" in _skip_reason()


def test_gpu_description_without_nvidia_smi(monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError("nvidia-smi")

    suites.gpu_description.cache_clear()
    monkeypatch.setattr(subprocess, "run", missing)
    try:
        assert suites.gpu_description() == "no GPU" and suites.gpu_count() == 0
    finally:
        suites.gpu_description.cache_clear()


def test_asv_check_accepts_the_suite():
    if shutil.which("asv") is None and importlib.util.find_spec("asv") is None:
        pytest.skip("asv is not installed (pip install -e '.[bench]')")
    done = subprocess.run([sys.executable, "-m", "asv", "check", "--python=same"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "No problems found" in done.stdout, done.stdout + done.stderr


def test_committed_asv_results_are_small_json():
    files = [p for p in (ROOT / "results" / "asv").rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".json" for p in files)
    assert sum(p.stat().st_size for p in files) < 5 * 2**20


def test_gpu_candidates_get_device_event_benchmarks(monkeypatch):
    if not GRID["gpu_candidates"]:
        assert "CorrelateDevice" not in suites.benchmark_classes("correlate", "suites.correlate")
    grid = json.loads(json.dumps(GRID))
    gpu = grid["ops"]["correlate"]["candidates"][:1]
    grid["gpu_candidates"] = gpu
    monkeypatch.setattr(suites, "GRID", grid)
    classes = suites.benchmark_classes("correlate", "suites.correlate")
    device = classes["CorrelateDevice"]
    assert device.params == [gpu, grid["ops"]["correlate"]["time"]]
    assert device.track_device_seconds.unit == "seconds"
    assert device.track_device_peak_bytes.unit == "bytes"
