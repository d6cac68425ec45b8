"""GPU candidates of the image form: direct_triton, ndimage_cupy, fft_cupy.

On every machine:
  * direct_triton's kernel runs under Triton's interpreter (TRITON_INTERPRET=1, CPU tensors,
    in a subprocess so the variable is set before triton is imported) on every small
    correlate case it supports (all 1-D/2-D cases and the 3-D ones with a length-1 kernel
    axis; the 3-D/4-D kernels are refused with a reason), on every third small convolve case
    through the registry's convolve adapter, and three planted mistakes in the kernel (reflect
    map off by one, constant-border mask dropped, float16 accumulation) are each rejected by
    convbench.verify;
  * the CuPy candidates' code runs with numpy and scipy standing in for CuPy (their array
    module is a parameter), on every small case: padding, cropping, dtypes, the kernel cache;
  * without a GPU every GPU candidate is listed as unavailable with its reason.
On a GPU (marker ``gpu``): the same candidates through the registry on CUDA arrays, the
planted mistakes compiled, and device-event timings.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convbench import registry, values
from convbench.cases import make_case, suite
from convbench.verification import case_facts, verify, verify_candidates

ROOT = Path(__file__).resolve().parent.parent
HAVE_TRITON = importlib.util.find_spec("triton") is not None


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def cupy_available() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


needs_triton = pytest.mark.skipif(not HAVE_TRITON, reason="triton is not installed (pip install "
                                  "triton): the interpreter checks of the Triton kernels need it")
needs_cuda = pytest.mark.skipif(not cuda_available(),
                                reason="no CUDA GPU (torch.cuda.is_available() is False): "
                                       "GPU candidates are not run here")
needs_cupy = pytest.mark.skipif(not cupy_available(), reason="no CuPy with a CUDA device here")


# ---------------------------------------------------------------------------------------
# Triton's interpreter: the kernel itself, on CPU tensors
# ---------------------------------------------------------------------------------------

INTERPRETER_SCRIPT = r"""
import json, os, sys, time
assert os.environ.get("TRITON_INTERPRET") == "1"
sys.path.insert(0, os.getcwd())
import numpy as np
from convbench import verify
from convbench.cases import suite
from convbench.ops import get_op
from candidates.correlate import direct_triton as m

started = time.perf_counter()

def wrapper(variant=0):
    def fn(x, w, **kw):
        return m._launch(m.to_native(np.asarray(x)), m.to_native(np.asarray(w)),
                         variant=variant, **kw)
    return fn

def convolve_wrapper(x, w, **kw):
    (x, w), kw = get_op("convolve").correlate_call((x, w), kw)
    return m.correlate(m.to_native(np.asarray(x)), m.to_native(np.ascontiguousarray(w)), **kw)

def summary(report):
    return {"counts": report.counts(), "passed": report.passed,
            "failures": [[r.case, r.status, r.detail[:160]] for r in report.failures]}

from convbench import registry, values
from convbench.verification import case_facts
declared = registry.get("correlate", "direct_triton")   # what it declares it handles
small = suite("small", "correlate")
ineligible = [c for c in small if values.ineligible(declared, c.spec, case_facts(c))]
supported = [c for c in small if m.supports(c.spec) is None and c not in ineligible]
refused = sorted({m.supports(c.spec) for c in small if m.supports(c.spec) is not None})
out = {"supported": len(supported), "small": len(small), "refused": refused,
       "ineligible": len(ineligible)}
out["correct"] = summary(verify("correlate", wrapper(), supported))
declared_convolve = registry.get("convolve", "direct_triton")
conv_cases = [c for c in suite("small", "convolve")[::3]
              if m.supports(c.spec.operation.as_correlate(c.spec)) is None
              and values.ineligible(declared_convolve, c.spec, case_facts(c)) is None]
out["convolve"] = summary(verify("convolve", convolve_wrapper, conv_cases))
out["convolve"]["cases"] = len(conv_cases)
groups = {
    "reflect_off_by_one": [c for c in supported if c.spec.kwargs["border"] == "reflect"],
    "constant_mask_dropped": [c for c in supported if c.spec.kwargs["border"] == "constant"],
    "float16_accumulation": [c for c in supported if "float16" in c.spec.dtypes],
}
# bfloat16: no numpy dtype, so checked here directly against the oracle's bound
import torch
from convbench.tolerance import bound, compare
from refimpl.correlate import correlate as oracle
rng = np.random.default_rng(2)
x = torch.from_numpy(rng.standard_normal((20, 17))).to(torch.bfloat16)
w = torch.from_numpy(rng.standard_normal((4, 5))).to(torch.bfloat16)
y = m.correlate(x, w, border="symmetric", origin=(1, -2))
xs, ws = x.double().numpy(), w.double().numpy()
yref = oracle(xs, ws, border="symmetric", origin=(1, -2))
absref = oracle(np.abs(xs), np.abs(ws), border="symmetric", origin=(1, -2))
tol = bound("direct", result_dtype="bfloat16", ref=yref, absref=absref, terms=20)
out["bfloat16"] = {"dtype": str(y.dtype), **compare(y.double().numpy(), yref, tol)}
out["planted"] = {}
for name, cases in groups.items():
    report = verify("correlate", wrapper(m._VARIANTS[name]), cases, name=name)
    out["planted"][name] = dict(summary(report), cases=len(cases))
out["seconds"] = time.perf_counter() - started
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def interpreted():
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", INTERPRETER_SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_triton
def test_direct_triton_passes_every_supported_small_case_under_the_interpreter(interpreted):
    assert interpreted["supported"] >= 75, interpreted       # 1-D, 2-D, RGB stacks, all borders
    assert interpreted["correct"]["passed"], interpreted["correct"]["failures"]
    assert interpreted["correct"]["counts"]["pass"] == interpreted["supported"]
    # what is refused says why: only the truly 3-D/4-D kernels
    assert interpreted["refused"] and all("truly" in r for r in interpreted["refused"])
    # and the values it does not declare (wide integer sums past float32's 2**24)
    assert interpreted["supported"] + interpreted["ineligible"] + 12 >= interpreted["small"]


@needs_triton
def test_direct_triton_convolve_through_the_adapter_under_the_interpreter(interpreted):
    conv = interpreted["convolve"]
    assert conv["cases"] >= 20 and conv["passed"], conv["failures"]


@needs_triton
def test_bfloat16_within_the_direct_bound_under_the_interpreter(interpreted):
    got = interpreted["bfloat16"]
    assert got["dtype"] == "torch.bfloat16" and got["passed"], got


@needs_triton
@pytest.mark.parametrize("variant", ["reflect_off_by_one", "constant_mask_dropped",
                                     "float16_accumulation"])
def test_planted_kernel_mistakes_are_rejected(interpreted, variant):
    got = interpreted["planted"][variant]
    assert got["cases"] > 0 and not got["passed"], got
    assert got["counts"]["FAIL"] >= 1
    # wrong values beyond the bound (or outside the integer interval), not crashes
    assert {status for _, status, _ in got["failures"]} == {"FAIL"}, got["failures"]


# ---------------------------------------------------------------------------------------
# The CuPy candidates' code with numpy/scipy standing in for CuPy
# ---------------------------------------------------------------------------------------

def _ndimage_standin(x, w, **kw):
    import scipy.ndimage

    from candidates.correlate import ndimage_cupy

    return ndimage_cupy.correlate_with(np, scipy.ndimage, np.asarray(x), np.asarray(w), **kw)


def _fft_standin(x, w, **kw):
    import scipy.fft

    from candidates.correlate import fft_cupy

    return fft_cupy.correlate_with(np, scipy.fft, np.asarray(x), np.asarray(w), **kw)


def _supported_small(module):
    """The small cases the module supports and whose values it declares it handles."""
    declared = registry.get("correlate", module.__name__.rsplit(".", 1)[1])
    return [c for c in suite("small", "correlate") if module.supports(c.spec) is None
            and values.ineligible(declared, c.spec, case_facts(c)) is None]


def test_ndimage_cupy_code_passes_small_cases_with_scipy_standing_in():
    from candidates.correlate import ndimage_cupy

    cases = _supported_small(ndimage_cupy)
    report = verify("correlate", _ndimage_standin, cases, name="ndimage_cupy_standin")
    assert report.passed and report.counts()["pass"] == len(cases), str(report)
    # valid/full are computed by extending and cropping: they are among the cases
    assert any(c.spec.kwargs["padding"] == "full" for c in cases)


def test_fft_cupy_code_passes_small_cases_with_scipy_standing_in():
    from candidates.correlate import fft_cupy

    fft_cupy.clear_cache()
    cases = _supported_small(fft_cupy)
    report = verify("correlate", _fft_standin, cases, error="fft", name="fft_cupy_standin")
    assert report.passed and report.counts()["pass"] == len(cases), str(report)
    info = fft_cupy.cache_info()
    assert info["misses"] >= 1 and info["entries"] <= fft_cupy.CACHE_ENTRIES


def test_fft_cupy_cache_hits_and_never_serves_a_stale_kernel():
    from candidates.correlate import fft_cupy

    fft_cupy.clear_cache()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 30)).astype(np.float32)
    w = rng.standard_normal((5, 4)).astype(np.float32)
    first = _fft_standin(x, w, border="reflect")
    second = _fft_standin(x, w, border="reflect")
    assert fft_cupy.cache_info()["hits"] == 1 and np.array_equal(first, second)
    w[0, 0] += 1.0                                # same array object, new values
    third = _fft_standin(x, w, border="reflect")
    assert fft_cupy.cache_info()["misses"] == 2
    import scipy.ndimage

    expected = scipy.ndimage.correlate(x.astype(np.float64), w.astype(np.float64), mode="mirror")
    assert np.allclose(third, expected, atol=1e-4) and not np.allclose(first, expected, atol=1e-4)


def test_smooth_length_is_the_next_7_smooth_size():
    from candidates.correlate.fft_cupy import smooth_length

    def smooth(n):
        for p in (2, 3, 5, 7):
            while n % p == 0:
                n //= p
        return n == 1

    assert [smooth_length(n) for n in (1, 11, 13, 17, 1013, 1024)] == [1, 12, 14, 18, 1024, 1024]
    for n in range(1, 400):
        m = smooth_length(n)
        assert m >= n and smooth(m) and not any(smooth(k) for k in range(n, m))


def test_extend_matches_numpy_pad_for_every_border_and_width():
    import types

    from candidates.runtime import extend

    # numpy's functions under another module's name: the path a cupy array takes
    other = types.SimpleNamespace(pad=np.pad, take=np.take, asarray=np.asarray)
    x = np.arange(12.0).reshape(3, 4)
    for border in ("constant", "edge", "symmetric", "reflect", "wrap"):
        pads = ((7, 2), (0, 9))                    # wider than the image
        kwargs = {"constant_values": 2.5} if border == "constant" else {}
        assert np.array_equal(extend(x, pads, border, 2.5, other), np.pad(x, pads, border, **kwargs))


# ---------------------------------------------------------------------------------------
# Without a GPU: listed, unavailable, with the reason
# ---------------------------------------------------------------------------------------

GPU_NAMES = ("ndimage_cupy", "fft_cupy", "direct_triton")


@pytest.mark.skipif(cuda_available(), reason="this machine has a GPU")
def test_gpu_candidates_unavailable_without_a_gpu():
    for name in GPU_NAMES:
        cand = registry.get("correlate", name)
        assert cand.device == "gpu" or "cannot be imported" in cand.unavailable()
        reason = cand.unavailable()
        assert reason and reason.startswith("unavailable:"), (name, reason)
        assert "no GPU" in reason or "not importable" in reason, reason
    report = verify_candidates([registry.get("correlate", n) for n in GPU_NAMES],
                               suite("small", "correlate")[:3])
    assert {r.status for r in report.rows} == {"unavailable"}


def test_importing_the_gpu_modules_loads_neither_triton_nor_cupy():
    code = ("import sys\nimport candidates.correlate.direct_triton, candidates.correlate.fft_cupy,"
            " candidates.correlate.ndimage_cupy, candidates.conv.implicit_gemm_triton, "
            "candidates.conv.cudnn_torch, convbench.gpu\n"
            "print(sorted(m for m in ('triton', 'cupy', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_direct_triton_refuses_what_it_does_not_compute():
    from candidates.correlate import direct_triton

    spec = make_case("correlate", [(5, 6, 4), (3, 2, 3)], "float32").spec
    assert "truly 3-D" in direct_triton.supports(spec)
    rgb = make_case("correlate", [(8, 8, 3), (3, 3, 1)], "float32").spec
    assert direct_triton.supports(rgb) is None
    complex_spec = make_case("correlate", [(8, 8), (3, 3)], "complex64").spec
    assert "complex" in direct_triton.supports(complex_spec)


# ---------------------------------------------------------------------------------------
# On a GPU
# ---------------------------------------------------------------------------------------

@pytest.mark.gpu
@needs_cuda
@needs_triton
def test_direct_triton_on_the_gpu_passes_small_cases():
    cand = registry.get("correlate", "direct_triton")
    assert cand.unavailable() is None
    report = verify_candidates([cand], suite("small", "correlate"))
    assert report.passed, str(report)


@pytest.mark.gpu
@needs_cuda
@needs_triton
@pytest.mark.parametrize("variant", ["reflect_off_by_one", "constant_mask_dropped",
                                     "float16_accumulation"])
def test_planted_mistakes_compiled_on_the_gpu_are_rejected(variant):
    from candidates.correlate import direct_triton as m

    def fn(x, w, **kw):
        return m._launch(m.to_native(np.asarray(x)), m.to_native(np.asarray(w)),
                         variant=m._VARIANTS[variant], **kw)

    cases = [c for c in suite("small", "correlate") if m.supports(c.spec) is None]
    assert not verify("correlate", fn, cases, name=variant).passed


@pytest.mark.gpu
@needs_cupy
@pytest.mark.parametrize("name", ["ndimage_cupy", "fft_cupy"])
def test_cupy_candidates_on_the_gpu_pass_small_cases(name):
    report = verify_candidates([registry.get("correlate", name)], suite("small", "correlate"))
    assert report.passed, str(report)


@pytest.mark.gpu
@needs_cuda
def test_gpu_timing_of_the_seed_fft_case():
    from convbench import bench, gpu
    from convbench.timing import QUICK

    case = next(c for c in suite("gpu", "correlate") if c.name == "seed-fft-1k")
    names = [n for n in GPU_NAMES if registry.get("correlate", n).unavailable() is None]
    rows = bench.run_case(case, [registry.get("correlate", n) for n in names], QUICK)
    timed = [r for r in rows if r["median"] == r["median"]]
    assert timed, rows
    for r in timed:
        assert r["clock"] == "cuda-events" and r["median"] > 0 and r["h2d_s"] > 0
        assert r["device_peak_bytes"] >= 1000 * 1000 * 4          # at least the output
    one = gpu.measure_candidate(registry.get("correlate", names[0]), case)
    assert one["median"] > 0 and one["d2h_s"] > 0
