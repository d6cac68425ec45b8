"""Candidates from other installed packages (convbench.outside, the ``convbench.candidates``
entry-point group).

The example package tests/example_package (installed by .ci/run) adds ``windowed_numpy``:
it is listed, verified, timed, gated with a baseline of its own and timed by the asv
suites like ours. Its planted-wrong twin ``flipped_numpy`` (kernel reversed), declared here
by a temporary distribution on the path, is rejected by verify and by the gate. A broken
entry is left out with one warning naming its package and entry.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from convbench import choose, outside, registry
from convbench.spec import Spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "tests" / "example_package"
DIST = "convbench-example-candidates"
GOOD, WRONG = "windowed_numpy", "flipped_numpy"


def _installed() -> bool:
    try:
        metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        return False
    return True


needs_example = pytest.mark.skipif(
    not _installed(), reason=f"{DIST} is not installed: pip install ./tests/example_package (.ci/run does)")


def distribution(folder: Path, name: str, entries: dict[str, str]) -> Path:
    """A distribution ``name`` declaring ``entries`` in the convbench.candidates group: a
    dist-info folder that importlib.metadata finds once ``folder`` is on the path."""
    info = folder / f"{name.replace('-', '_')}-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{outside.GROUP}]\n{lines}")
    return folder


def convbench(*args: str, path: Path | None = None) -> subprocess.CompletedProcess:
    """The command line in a fresh process; ``path`` (with the example's sources) goes on
    its PYTHONPATH."""
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(path), str(EXAMPLE)] + [p for p in [env.get("PYTHONPATH")] if p])
    return subprocess.run([sys.executable, "-m", "convbench.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """A path entry on which a distribution declares the planted-wrong twin (and the
    example's candidate when the example is not installed, so the twin has a baseline)."""
    entries = {f"correlate.{WRONG}": f"convbench_example.{WRONG}"}
    if not _installed():
        entries[f"correlate.{GOOD}"] = f"convbench_example.{GOOD}"
    return distribution(tmp_path_factory.mktemp("planted"), "convbench-planted-wrong", entries)


@pytest.fixture(scope="module")
def tiny_baseline(tmp_path_factory, planted) -> Path:
    """A gate baseline of the tiny suite for the example's candidate, written by the gate's
    own --update-baseline."""
    path = tmp_path_factory.mktemp("gate") / "baseline.json"
    done = convbench("gate", "--suite", "tiny", "--candidate", GOOD, "--samples", "7",
                     "--baseline", str(path), "--update-baseline", path=planted)
    assert done.returncode == 0, done.stdout + done.stderr
    return path


# ------------------------------------------------------------------- the example package


@needs_example
def test_example_is_a_candidate_of_correlate_and_of_the_ops_reusing_it():
    for op, reused in (("correlate", None), ("convolve", "correlate"), ("gaussian", "correlate")):
        found = {c.name: c for c in registry.candidates(op)}
        assert GOOD in found, op
        assert found[GOOD].module_path == f"convbench_example.{GOOD}"
        assert found[GOOD].package == DIST and found[GOOD].reused_from == reused
        assert not found[GOOD].peer
    assert registry.get("correlate", "shift_add_numpy").package is None


@needs_example
def test_verify_passes_the_example_on_the_small_cases():
    done = convbench("verify", "--op", "correlate,convolve", "--candidate", GOOD)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "PASSED" in done.stdout and "FAIL" not in done.stdout


@needs_example
def test_bench_times_the_example():
    done = convbench("bench", "--op", "correlate", "--candidate", GOOD, "--suite", "quick",
                     "--filter", "camera-sharpen", "--protocol", "quick", "--no-save")
    assert done.returncode == 0, done.stdout + done.stderr
    row = [line for line in done.stdout.splitlines() if GOOD in line]
    assert len(row) == 1 and "pass" in row[0] and " ms" in row[0], done.stdout


@needs_example
def test_gate_gates_the_example_with_its_own_baseline(tiny_baseline):
    doc = json.loads(tiny_baseline.read_text())
    assert any(key.endswith(f"/{GOOD}") for key in doc["entries"]), doc["entries"].keys()
    # a 100% effect threshold: this checks the plumbing, not the noise of a shared machine
    done = convbench("gate", "--suite", "tiny", "--candidate", GOOD, "--samples", "7",
                     "--min-effect", "1", "--baseline", str(tiny_baseline))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS: 1 timings" in done.stdout and GOOD in done.stdout


@needs_example
def test_the_default_choice_never_picks_an_outside_candidate():
    rng = np.random.default_rng(3)
    for shape, kernel in (((64, 64), (15, 15)), ((512, 512), (3, 3)), ((40,), (7,))):
        w = rng.standard_normal(kernel).astype(np.float32)
        spec = Spec.make("correlate", (shape, kernel), ("float32", "float32"))
        for library in ("numpy", "torch", "cupy"):
            assert GOOD not in choose.ranking(spec, library, w), (spec.id, library)
        assert choose.choose(spec, kernel=w).package is None


@needs_example
def test_asv_suites_time_the_example_and_the_grid_leaves_it_out():
    import suites
    import suites.correlate as family

    from convbench import asv_support

    assert GOOD in family.Correlate.params[0] and GOOD in family.CorrelatePeakmem.params[0]
    assert GOOD not in suites.GRID["ops"]["correlate"]["candidates"]
    grid = asv_support.build_grid()
    assert all(GOOD not in entry["candidates"] for entry in grid["ops"].values())
    assert asv_support.render(grid) == suites.GRID_PATH.read_text()
    prepared = suites.Prepared("correlate", GOOD, family.Correlate.params[1][0])
    try:
        prepared.call()
    finally:
        prepared.close()


# --------------------------------------------------------------- the planted-wrong twin


def test_verify_rejects_the_planted_wrong_twin(planted):
    done = convbench("verify", "--op", "correlate", "--candidate", WRONG, path=planted)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr
    failed = [line for line in done.stdout.splitlines() if WRONG in line and "FAIL" in line]
    assert failed and "> bound" in failed[0], done.stdout[-3000:]


def test_gate_rejects_the_planted_wrong_twin(planted, tiny_baseline):
    done = convbench("gate", "--suite", "tiny", "--candidate", f"{GOOD},{WRONG}",
                     "--samples", "7", "--min-effect", "1", "--baseline", str(tiny_baseline),
                     path=planted)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "wrong result" in done.stdout and WRONG in done.stdout


# ---------------------------------------------------------------------- broken entries

INCOMPLETE = '''LIBRARY = "numpy"
DEVICE = "cpu"
ERROR = "direct"


def correlate(x, w, **kwargs):
    return x
'''


@pytest.fixture
def broken(tmp_path, monkeypatch):
    """Broken entries of a distribution on sys.path in this process (read afresh)."""
    (tmp_path / "convbench_incomplete_twin.py").write_text(INCOMPLETE)
    entries = {
        "correlate.missing_numpy": "convbench_no_such_module.kernel",      # cannot be imported
        "correlate.incomplete_numpy": "convbench_incomplete_twin",         # no supports()
        "correlate.shift_add_numpy": "convbench_incomplete_twin",          # our name
        "no_such_op.windowed_numpy": "convbench_incomplete_twin",          # unknown op
        "correlate.Windowed": "convbench_incomplete_twin",                 # not <algorithm>_<library>
        "correlate": "convbench_incomplete_twin",                          # no candidate name
    }
    monkeypatch.syspath_prepend(str(distribution(tmp_path, "convbench-broken-example", entries)))
    importlib.invalidate_caches()
    outside.candidates.cache_clear()
    yield entries
    outside.candidates.cache_clear()


def test_a_broken_entry_warns_once_and_is_left_out(broken):
    with pytest.warns(outside.OutsideCandidateWarning) as caught:
        names = {op: [c.name for c in registry.candidates(op)] for op in registry.ops()}
        registry.candidates("correlate")   # read once per process: no second warning
    messages = [str(w.message) for w in caught if issubclass(w.category, outside.OutsideCandidateWarning)]
    for entry in broken:
        mine = [m for m in messages if f"{entry!r}" in m]
        assert len(mine) == 1 and "'convbench-broken-example'" in mine[0], (entry, messages)
    why = {entry: next(m for m in messages if f"{entry!r}" in m) for entry in broken}
    assert "cannot be imported" in why["correlate.missing_numpy"]
    assert "supports() is missing" in why["correlate.incomplete_numpy"]
    assert "already has a correlate candidate" in why["correlate.shift_add_numpy"]
    assert "unknown op 'no_such_op'" in why["no_such_op.windowed_numpy"]
    assert "<algorithm>_<library>" in why["correlate.Windowed"]
    assert "'<op>.<candidate name>'" in why["correlate"]
    assert not {"missing_numpy", "incomplete_numpy", "Windowed"} & set(names["correlate"])
    assert registry.get("correlate", "shift_add_numpy").module_path == "candidates.correlate.shift_add_numpy"


def test_list_shows_the_example_and_survives_a_broken_entry(tmp_path):
    folder = distribution(tmp_path, "convbench-broken-example",
                          {"correlate.missing_numpy": "convbench_no_such_module.kernel"})
    done = convbench("list", "--op", "correlate", path=folder)
    assert done.returncode == 0, done.stderr
    assert "shift_add_numpy" in done.stdout and "missing_numpy" not in done.stdout
    assert "'convbench-broken-example'" in done.stderr and "cannot be imported" in done.stderr
    if _installed():
        rows = [line for line in done.stdout.splitlines() if GOOD in line]
        assert len(rows) == 1 and f"convbench_example.{GOOD}" in rows[0], done.stdout
