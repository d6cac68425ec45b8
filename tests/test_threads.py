"""No convbench call changes a global thread setting, and no import sets an environment
variable: convbench.threads(n) is the one place that changes thread counts, and it puts
every one of them back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import convbench
from candidates import runtime
from convbench import registry, verification
from convbench.cases import suite
from convbench.thread_settings import threads

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("torch", "cv2", "numba", "threadpoolctl", "scipy.fft", "scipy.ndimage",
             "scipy.signal", "ducc0")


def _module(name):
    try:
        return __import__(name, fromlist=["_"])
    except ImportError:
        return None


def settings() -> dict:
    """Every thread setting a candidate could change, and the environment."""
    out = {"runtime": runtime._threads, "environ": dict(os.environ)}
    torch, cv2, numba = _module("torch"), _module("cv2"), _module("numba")
    if torch is not None:
        out["torch"] = torch.get_num_threads()
        out["torch_interop"] = torch.get_num_interop_threads()
    if cv2 is not None:
        out["cv2"] = cv2.getNumThreads()
    if numba is not None:
        out["numba"] = numba.get_num_threads()
    threadpoolctl = _module("threadpoolctl")
    if threadpoolctl is not None:
        out["pools"] = {(i["filepath"], i["user_api"]): i["num_threads"]
                        for i in threadpoolctl.threadpool_info()}
    return out


def assert_unchanged(before: dict, after: dict, what: str) -> None:
    pools_before, pools_after = before.pop("pools", {}), after.pop("pools", {})
    # a library a call loads for the first time appears with its own default: not a change
    changed = {k: (v, pools_after.get(k)) for k, v in pools_before.items() if pools_after.get(k) != v}
    assert not changed, f"{what} changed thread pools (before, after): {changed}"
    env_before, env_after = before.pop("environ"), after.pop("environ")
    changed = {k: (env_before.get(k), env_after.get(k)) for k in set(env_before) | set(env_after)
               if env_before.get(k) != env_after.get(k)}
    assert not changed, f"{what} changed the environment (before, after): {changed}"
    assert after == before, f"{what} changed thread settings: {before} -> {after}"


@pytest.fixture
def unusual_settings():
    """One thread in torch, OpenCV and numba (a call forcing 'all cores' shows), BLAS and
    OpenMP at their defaults; everything back afterwards."""
    for name in LIBRARIES:
        _module(name)
    torch, cv2, numba = _module("torch"), _module("cv2"), _module("numba")
    saved = settings()
    if torch is not None:
        torch.set_num_threads(1)
    if cv2 is not None:
        cv2.setNumThreads(1)
    if numba is not None:
        numba.set_num_threads(1)
    runtime.set_threads(None)
    yield
    if torch is not None:
        torch.set_num_threads(saved["torch"])
    if cv2 is not None:
        cv2.setNumThreads(saved["cv2"])
    if numba is not None:
        numba.set_num_threads(saved["numba"])
    runtime.set_threads(saved["runtime"])


def _candidates():
    for op in registry.ops():
        for candidate in registry.candidates(op):
            marks = [pytest.mark.slow] if candidate.name == "iir_numba" else []  # compiles ~20 s
            yield pytest.param(candidate, id=candidate.key, marks=marks)


def _runnable_case(candidate):
    """The first small case ``candidate`` runs here (the test skips, with the reason, when
    there is none)."""
    reason = candidate.unavailable()
    if reason:
        pytest.skip(reason)
    for case in suite("small", candidate.op):
        if verification.skip_reason(candidate, case) is None:
            return case
    pytest.skip(f"no small {candidate.op} case that {candidate.name} runs")


@pytest.mark.parametrize("candidate", list(_candidates()))
def test_a_candidate_call_changes_no_setting(candidate, unusual_settings):
    case = _runnable_case(candidate)
    native = verification.native_inputs(candidate, case)
    before = settings()
    verification.call(candidate, case, native)
    assert_unchanged(before, settings(), f"{candidate.key} on {case.id}")


API = {"correlate": lambda arrays, kw, name: convbench.correlate(*arrays, **kw, algorithm=name),
       "conv": lambda arrays, kw, name: convbench.conv(*arrays, **kw, algorithm=name),
       "max_pool": lambda arrays, kw, name: convbench.max_pool(*arrays, **kw, algorithm=name)}


@pytest.mark.parametrize("candidate", [pytest.param(c, id=c.key) for op in API
                                       for c in registry.candidates(op)])
def test_a_library_call_changes_no_setting(candidate, unusual_settings):
    case = _runnable_case(candidate)
    arrays = case.arrays()
    kwargs = {k: v for k, v in case.spec.params if v is not None}
    before = settings()
    y = API[candidate.op](arrays, kwargs, candidate.name)
    assert isinstance(y, np.ndarray)
    assert_unchanged(before, settings(), f"convbench.{candidate.op}(algorithm={candidate.name!r})")


def _convbench_modules() -> list[str]:
    names = []
    for path in sorted((ROOT / "convbench").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] in ("__init__", "__main__"):
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def test_importing_convbench_sets_no_environment_variable():
    modules = _convbench_modules() + ["candidates.runtime"]
    code = ("import json, os, sys\nbefore = dict(os.environ)\n"
            + "".join(f"import {m}\n" for m in modules)
            + "after = dict(os.environ)\n"
            "print(json.dumps({k: [before.get(k), after.get(k)] for k in set(before) | set(after)"
            " if before.get(k) != after.get(k)}))\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(modules) > 20
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {}


def test_threads_sets_every_library_and_restores_it(unusual_settings):
    torch, cv2, numba = _module("torch"), _module("cv2"), _module("numba")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = settings()
    for n in (1, 2):
        with threads(n) as got:
            assert got == n
            assert runtime.threads() == n and runtime._threads == n
            if torch is not None:
                assert torch.get_num_threads() == n
            if cv2 is not None:
                assert cv2.getNumThreads() == n
            if numba is not None:
                assert numba.get_num_threads() == min(n, numba.config.NUMBA_NUM_THREADS)
            pools = threadpoolctl.threadpool_info()
            assert pools and all(p["num_threads"] == n for p in pools), pools
        assert_unchanged(dict(before), settings(), f"threads({n})")


def test_threads_none_and_zero_mean_every_core(unusual_settings):
    for n in (None, 0):
        with threads(n) as got:
            assert got == os.cpu_count() == runtime.threads()


def test_threads_restores_after_an_exception_and_when_nested(unusual_settings):
    before = settings()
    with pytest.raises(RuntimeError, match="inside"):
        with threads(2):
            raise RuntimeError("inside")
    assert_unchanged(dict(before), settings(), "threads(2) left by an exception")
    with threads(2):
        middle = settings()
        with threads(1):
            assert runtime.threads() == 1
        assert_unchanged(dict(middle), settings(), "the inner threads(1)")
    assert_unchanged(before, settings(), "threads(2) around threads(1)")


def test_threads_imports_the_libraries_it_is_told_about():
    code = ("import sys\nfrom convbench.thread_settings import threads\n"
            "assert 'cv2' not in sys.modules\n"
            "with threads(1, libraries=['cv2', 'no_such_library']):\n"
            "    import cv2\n    assert cv2.getNumThreads() == 1, cv2.getNumThreads()\n"
            "print('ok')\n")
    pytest.importorskip("cv2")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


@pytest.mark.parametrize("n", [-1, 1.5, True, "2"])
def test_threads_refuses_a_bad_count(n):
    with pytest.raises(ValueError, match="threads: n must be a whole number >= 0"):
        with threads(n):
            pass
