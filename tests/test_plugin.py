"""The pytest plugin (convbench/pytest_plugin.py): a user's test file, run with pytester,
benchmarks and verifies the user's own kernel on the case catalogue through pytest-benchmark.

The inner runs load the plugins explicitly with autoloading off, so they behave the same
whether or not convbench is installed (and its pytest11 entry point active).
"""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("pytest_benchmark")

# Imported here, in the outer process: pytester's in-process runs restore sys.modules
# afterwards, and numpy/torch cannot be imported twice in one process.
import convbench.pytest_plugin  # noqa: E402,F401
import pytest_benchmark.plugin  # noqa: E402,F401
import scipy.ndimage  # noqa: E402,F401

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent

USER_TESTS = '''
import os
import time
import numpy as np
from scipy import ndimage

# numpy.pad border names -> scipy.ndimage modes
MODES = {"constant": "constant", "edge": "nearest", "symmetric": "reflect",
         "reflect": "mirror", "wrap": "wrap"}


def my_correlate(x, w, *, border, cval, padding, origin, out_dtype=None):
    if os.environ.get("KERNEL") == "off-by-one":   # a classic bug: the anchor one sample off
        origin = origin + 1
    y = ndimage.correlate(np.asarray(x, np.float64), np.asarray(w, np.float64),
                          mode=MODES[border], cval=cval, origin=origin)
    if os.environ.get("KERNEL") == "slow":          # the same answer, 50 ms later (a margin
        time.sleep(0.05)                            # no load on a shared machine can hide)
    return y.astype(np.float32)


def test_my_correlate(benchmark, conv_case):
    conv_case.run(benchmark, my_correlate)
'''

FAST = ["--benchmark-min-rounds=5", "--benchmark-max-time=0.2", "--benchmark-warmup=off",
        "--benchmark-disable-gc"]


@pytest.fixture
def run(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("KERNEL", raising=False)
    pytester.makepyfile(test_user=USER_TESTS)

    def runner(*args, kernel=None):
        if kernel:
            monkeypatch.setenv("KERNEL", kernel)
        else:
            monkeypatch.delenv("KERNEL", raising=False)
        return pytester.runpytest_inprocess(
            "-p", "pytest_benchmark.plugin", "-p", "convbench.pytest_plugin",
            "-p", "no:cacheprovider", "-W", "ignore::pytest.PytestAssertRewriteWarning",
            "--convbench-filter", "camera-sharpen", *FAST, *args)

    return runner


def test_verdict_goes_to_extra_info(run, pytester):
    result = run("--benchmark-json=out.json")
    result.assert_outcomes(passed=1)
    doc = json.loads((pytester.path / "out.json").read_text())
    [bench] = doc["benchmarks"]
    info = bench["extra_info"]
    assert info["convbench_status"] == "pass"
    assert info["convbench_op"] == "correlate"
    assert info["convbench_case"].startswith("camera-sharpen-correlate-x512x512-w3x3")
    assert bench["param"] == info["convbench_case"]           # the case id is the test id
    assert 0 <= info["convbench_worst"] <= 1
    assert info["convbench_error_model"] == "direct"
    assert info["convbench_checked"]
    assert bench["stats"]["median"] > 0


def test_wrong_kernel_fails_and_is_not_timed(run, pytester):
    result = run("--benchmark-json=out.json", kernel="off-by-one")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*wrong result on camera-sharpen-correlate*(not timed)*"])
    out = pytester.path / "out.json"       # pytest-benchmark writes nothing when nothing ran
    text = out.read_text().strip() if out.exists() else ""
    assert not text or json.loads(text)["benchmarks"] == []


def test_compare_fail_round_trip(run, pytester):
    storage = f"file://{pytester.path / 'store'}"
    first = run("--benchmark-autosave", f"--benchmark-storage={storage}")
    first.assert_outcomes(passed=1)
    saved = list((pytester.path / "store").rglob("*.json"))
    assert len(saved) == 1
    assert json.loads(saved[0].read_text())["benchmarks"][0]["extra_info"]["convbench_status"] == "pass"
    slower = run("--benchmark-compare", "--benchmark-compare-fail=median:5%",
                 f"--benchmark-storage={storage}", kernel="slow")
    assert slower.ret != 0
    assert "Performance has regressed" in slower.stdout.str() + slower.stderr.str()
    same = run("--benchmark-compare", "--benchmark-compare-fail=median:1000%",
               f"--benchmark-storage={storage}")
    assert same.ret == 0, same.stdout.str()


def test_marker_and_options_choose_cases(pytester, monkeypatch):
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(test_pick='''
import pytest

@pytest.mark.convbench(op="convolve", suite="small", filter="x9-w3-")
def test_ids(conv_case):
    assert conv_case.op == "convolve" and "x9-w3-" in conv_case.id
''')
    result = pytester.runpytest_inprocess("-p", "convbench.pytest_plugin", "-p", "no:cacheprovider",
                                          "--collect-only", "-q")
    ids = [line for line in result.stdout.lines if "test_ids[" in line]
    assert len(ids) == 5, result.stdout.str()      # one 9-sample 3-tap case per border
    pytester.makepyfile(test_plain="def test_plain(conv_case):\n    pass\n")
    bad = pytester.runpytest_inprocess("-p", "convbench.pytest_plugin", "-p", "no:cacheprovider",
                                       "--convbench-suite", "nope", "--collect-only", "test_plain.py")
    assert bad.ret != 0
    assert "unknown suite 'nope'" in bad.stdout.str() + bad.stderr.str()
    plain = pytester.runpytest_inprocess("-p", "convbench.pytest_plugin", "-p", "no:cacheprovider",
                                         "--convbench-op", "convolve", "--collect-only", "-q",
                                         "test_plain.py")
    ids = [line for line in plain.stdout.lines if "test_plain[" in line]
    assert ids and all("-convolve-" in line for line in ids)     # the quick convolve cases


def test_entry_point_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"convbench": "convbench.pytest_plugin"}
