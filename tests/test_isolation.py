"""Isolation: a candidate that aborts, hangs, exits, raises KeyboardInterrupt or writes
into its inputs fails its own row in bench, the gate and verify; the rest of the run
completes. Ctrl-C stops a CLI run with exit 130 and keeps the completed rows."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from convbench import bench, cli, gate, registry, timing, verification
from convbench.cases import make_case
from convbench.ops import all_ops, get_op

ROOT = Path(__file__).resolve().parent.parent
FAST = timing.Protocol(warmup_s=0.0, sample_s=0.0005)
TIMEOUT = 2

# name -> body of correlate(x, w, **kw); each module is a registry candidate
BAD = {
    "aborts_numpy": "os.abort()",
    "hangs_numpy": "time.sleep(60)",
    "exits_numpy": "raise SystemExit(3)",
    "interrupts_numpy": "raise KeyboardInterrupt",
    "writes_input_numpy": "x[...] = 0\n    return np.zeros(x.shape)",
}
EXPECTED = {
    "aborts_numpy": "crashed: killed by signal SIGABRT",
    "hangs_numpy": f"timed out after {TIMEOUT} s",
    "exits_numpy": "raised SystemExit(3)",
    "interrupts_numpy": "raised KeyboardInterrupt",
    "writes_input_numpy": "modified its input x",
}


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """The BAD candidates as modules under tmp_path, in the correlate registry."""
    package = f"bad_{os.getpid()}_{time.monotonic_ns()}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    for name, body in BAD.items():
        (tmp_path / package / f"{name}.py").write_text(
            "import os, time\nimport numpy as np\n"
            'LIBRARY, DEVICE, ERROR = "numpy", "cpu", "direct"\n\n'
            "def supports(spec):\n    return None\n\n"
            f"def correlate(x, w, **kw):\n    {body}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    record = get_op("correlate")
    monkeypatch.setitem(all_ops(), "correlate", dataclasses.replace(
        record, candidates={**record.candidates, **{n: f"{package}.{n}" for n in BAD}}))
    return [registry.get("correlate", n) for n in BAD]


def tiny(n=24, name=""):
    return make_case("correlate", [(n, n), (3, 3)], "float64", border="reflect", name=name)


def assert_bad_rows(rows_by_name):
    for name, expected in EXPECTED.items():
        status, detail = rows_by_name[name]
        assert status == "error" and expected in detail, (name, status, detail)


def test_bench_bad_candidates_fail_their_rows(planted):
    good = registry.get("correlate", "shift_add_numpy")
    cases = [tiny(24), tiny(28)]
    rows = bench.run(cases, [good] + planted, FAST, timeout=TIMEOUT)
    assert len(rows) == 2 * (1 + len(BAD))
    for case in cases:
        mine = {r["candidate"]: (r["status"], r["detail"]) for r in rows if r["case"] == case.id}
        assert_bad_rows(mine)
        [timed] = [r for r in rows if r["case"] == case.id and r["candidate"] == good.name]
        assert timed["status"] == "pass" and len(timed["samples"]) >= 7 and timed["ratio"] == 1.0


def test_gate_bad_candidates_fail_their_entries(planted):
    cases = gate.suite_cases("tiny")
    entries = gate.measure_suite(cases, ["ndimage_scipy"] + list(BAD), samples=7,
                                 sample_s=0.001, timeout=TIMEOUT)
    assert_bad_rows({e.candidate: (e.status, e.detail) for e in entries})
    [good] = [e for e in entries if e.candidate == "ndimage_scipy"]
    assert good.status == "pass" and len(good.seconds) == len(good.reference) == 7


def aborts(x, w, **kw):
    os.abort()


def null_read(x, w, **kw):
    import ctypes

    return ctypes.string_at(0)


def hangs(x, w, **kw):
    time.sleep(60)


def exits(x, w, **kw):
    raise SystemExit(3)


def interrupts(x, w, **kw):
    raise KeyboardInterrupt


def writes_input(x, w, **kw):
    out = ndimage.correlate(x, w, mode="reflect")
    x[0, 0] = np.nan
    return out


def test_verify_isolated_user_functions():
    cases = [tiny(20), tiny(22)]
    expected = {aborts: "SIGABRT", null_read: "SIGSEGV", hangs: f"timed out after {TIMEOUT} s",
                exits: "raised SystemExit(3)", interrupts: "raised KeyboardInterrupt",
                writes_input: "modified its input x"}
    started = time.perf_counter()
    for fn, text in expected.items():
        report = verification.verify("correlate", fn, cases=cases, isolate=True, timeout=TIMEOUT)
        assert len(report.rows) == 2 and not report
        assert all(r.status == "error" and text in r.detail for r in report.rows), report.rows
    assert time.perf_counter() - started < 4 * TIMEOUT + 20   # each hang stopped at the timeout
    good = verification.verify("correlate", registry.get("correlate", "ndimage_scipy").function(),
                               cases=cases, isolate=True, timeout=TIMEOUT)
    assert good and [r.status for r in good.rows] == ["pass", "pass"]


@pytest.mark.parametrize("fn, text", [(exits, "raised SystemExit(3)"),
                                      (interrupts, "raised KeyboardInterrupt"),
                                      (writes_input, "modified its input x")])
def test_in_process_exits_fail_only_their_row(fn, text):
    good = registry.get("correlate", "ndimage_scipy")
    rows = bench.run_case(tiny(26), [registry.user_candidate("correlate", fn), good], FAST,
                          isolate=False)
    assert rows[0]["status"] == "error" and text in rows[0]["detail"]
    assert rows[1]["status"] == "pass" and not math.isnan(rows[1]["median"])


def test_missing_optional_package_fails_only_its_cases(monkeypatch):
    from convbench import data

    def no_skimage(name):
        raise data.MissingPackage(f"photo {name!r} needs scikit-image: pip install scikit-image")

    monkeypatch.setattr(data, "photo", no_skimage)
    photo = make_case("correlate", [(37, 41), (3, 3)], "uint8", border="reflect",
                      data=("camera", "sharpen"), name="photo-test")
    rows = bench.run([photo, tiny(30)], [registry.get("correlate", "ndimage_scipy")], FAST)
    assert rows[0]["status"] == "unavailable" and "scikit-image" in rows[0]["detail"]
    assert rows[1]["status"] == "pass" and not math.isnan(rows[1]["median"])


def test_cli_bench_timeout_completes_and_saves(planted, tmp_path, capsys):
    code = cli.main(["bench", "--suite", "quick", "--op", "correlate", "--filter", "camera-sharpen",
                     "--candidate", "ndimage_scipy,hangs_numpy", "--timeout", str(TIMEOUT),
                     "--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == cli.EXIT_FAIL, out
    [saved] = list(tmp_path.glob("*.json"))
    rows = {r["candidate"]: r for r in json.loads(saved.read_text())["rows"]}
    assert rows["hangs_numpy"]["status"] == "error"
    assert f"timed out after {TIMEOUT} s" in rows["hangs_numpy"]["detail"]
    assert rows["ndimage_scipy"]["status"] == "pass"


def test_timeout_flag_rejects_nonsense(capsys):
    assert cli.main(["bench", "--timeout", "-1"]) == cli.EXIT_USAGE


DRIVER = """
import dataclasses, os, signal, sys, time
from pathlib import Path
# a user's shell delivers Ctrl-C; a test runner's process may have blocked or ignored SIGINT
# (a library's worker-pool setup), which a child inherits: start as a shell would
if signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []):
    print("inherited a blocked SIGINT", file=sys.stderr)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
signal.signal(signal.SIGINT, signal.default_int_handler)
from convbench import cli
from convbench.ops import all_ops, get_op
marker = Path(sys.argv[1])

def correlate(x, w, **kw):   # correct; hangs from the second case on (another shape)
    from scipy import ndimage
    seen = marker.with_suffix(".shape")
    if not seen.exists():
        seen.write_text(str(x.shape))
    elif seen.read_text() != str(x.shape):
        marker.write_text("hanging")
        time.sleep(60)
    return ndimage.correlate(x, w, mode=kw["border"] if kw["border"] != "symmetric" else "reflect")

import types
module = types.ModuleType("late_numpy")
module.LIBRARY, module.DEVICE, module.ERROR = "numpy", "cpu", "direct"
module.supports = lambda spec: None if spec.kwargs.get("border") in ("reflect", "symmetric", "nearest") and spec.kwargs.get("padding", "same") == "same" else "no"
module.correlate = correlate
sys.modules["late_numpy"] = module
record = get_op("correlate")
all_ops()["correlate"] = dataclasses.replace(
    record, candidates={**record.candidates, "late_numpy": "late_numpy"})
sys.exit(cli.main(sys.argv[2:]))
"""


def test_ctrl_c_exits_130_and_keeps_completed_rows(tmp_path):
    marker = tmp_path / "marker"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    process = subprocess.Popen(
        [sys.executable, str(driver), str(marker), "bench", "--suite", "quick", "--op", "correlate",
         "--candidate", "late_numpy,ndimage_scipy", "--results-dir", str(tmp_path / "runs")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), process.communicate(timeout=60)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "Ctrl-C" in err
    [saved] = list((tmp_path / "runs").glob("*.json"))
    rows = json.loads(saved.read_text())["rows"]
    assert rows and all(r["status"] in ("pass", "unsupported", "skipped", "unavailable") for r in rows)
    assert len({r["case"] for r in rows}) >= 1
