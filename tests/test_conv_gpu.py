"""GPU candidates of the layer form and pooling: cudnn_torch (+ autotune / TF32 variants),
implicit_gemm_triton, pool cudnn_torch; the 'tf32' precision class; convbench.gpu's timing.

On every machine:
  * implicit_gemm_triton's kernel runs under Triton's interpreter (TRITON_INTERPRET=1, CPU
    tensors, in a subprocess) on every small conv case with 1-2 spatial axes (3-D refused
    with a reason), the same cases as conv_relu (fused ReLU), a bfloat16 check against the
    oracle, and three planted mistakes (stride phase, unmasked K tail, float16
    accumulation) each rejected by convbench.verify;
  * cudnn_torch's code (settings switch, native-half decisions, border logic) runs on CPU
    tensors on a subset of every op's small cases (every third conv case and so on);
  * the 'tf32' class: emulated TF32 inputs pass 'tf32' and FAIL 'direct', with the error;
  * convbench.gpu's protocol runs against a fake device, and bench routes GPU candidates
    through it.
On a GPU (marker ``gpu``): the registry's candidates on CUDA tensors, real TF32, timings.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from convbench import registry
from convbench.cases import Case, make_case, suite
from convbench.spec import Spec
from convbench.verification import verify, verify_candidates

ROOT = Path(__file__).resolve().parent.parent
HAVE_TRITON = importlib.util.find_spec("triton") is not None


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


needs_triton = pytest.mark.skipif(not HAVE_TRITON, reason="triton is not installed (pip install "
                                  "triton): the interpreter checks of the Triton kernels need it")
needs_cuda = pytest.mark.skipif(not cuda_available(),
                                reason="no CUDA GPU (torch.cuda.is_available() is False): "
                                       "GPU candidates are not run here")


def as_op(case: Case, op: str) -> Case:
    """A conv case re-specced as ``op`` (conv_relu takes conv's arrays and keywords)."""
    spec = Spec.make(op, case.spec.shapes, case.spec.dtypes, **case.spec.kwargs)
    return Case(spec, case.data, case.strided, case.name, case.tags)


def small_conv_relu_cases():
    return [as_op(c, "conv_relu") for c in suite("small", "conv")]


# ---------------------------------------------------------------------------------------
# Triton's interpreter
# ---------------------------------------------------------------------------------------

INTERPRETER_SCRIPT = r"""
import json, os, sys, time
assert os.environ.get("TRITON_INTERPRET") == "1"
sys.path.insert(0, os.getcwd())
import numpy as np
import torch
from convbench import verify
from convbench.cases import Case, suite
from convbench.spec import Spec
from convbench.tolerance import bound, compare
from candidates.conv import implicit_gemm_triton as m
from refimpl import conv as ref

started = time.perf_counter()

def wrapper(relu=False, variant=0):
    def fn(x, w, bias=None, **kw):
        t = lambda a: None if a is None else m.to_native(np.asarray(a))
        return m._launch(t(x), t(w), t(bias), relu=relu, variant=variant, **kw)
    return fn

def summary(report):
    return {"counts": report.counts(), "passed": report.passed,
            "failures": [[r.case, r.status, r.detail[:160]] for r in report.failures]}

small = suite("small", "conv")
supported = [c for c in small if m.supports(c.spec) is None]
out = {"small": len(small), "supported": len(supported),
       "supported_nonfinite": sum(c.nonfinite for c in supported),
       "refused": sorted({m.supports(c.spec) for c in small if m.supports(c.spec)})}
out["conv"] = summary(verify("conv", wrapper(), supported))
# finite values only: the fused ReLU maps NaN to 0 (the candidate does not declare NONFINITE,
# so it is never given NaN)
relu_cases = [Case(Spec.make("conv_relu", c.spec.shapes, c.spec.dtypes, **c.spec.kwargs),
                   c.data, c.strided, c.name) for c in supported if not c.nonfinite]
out["conv_relu"] = summary(verify("conv_relu", wrapper(relu=True), relu_cases))
out["conv_relu"]["cases"] = len(relu_cases)
# bfloat16: no numpy dtype, so checked here directly against the oracle's bound
rng = np.random.default_rng(1)
x = torch.from_numpy(rng.standard_normal((2, 4, 7, 6))).to(torch.bfloat16)
w = torch.from_numpy(rng.standard_normal((6, 2, 3, 3))).to(torch.bfloat16)
b = torch.from_numpy(rng.standard_normal(6)).to(torch.bfloat16)
kw = dict(stride=(1, 2), padding=((2, 0), (1, 1)), groups=2, border="reflect")
y = m.conv(x, w, b, **kw)
xs, ws, bs = (t.double().numpy() for t in (x, w, b))
yref = ref.conv(xs, ws, bs, **kw)
absref = ref.conv(np.abs(xs), np.abs(ws), np.abs(bs), **kw)
tol = bound("direct", result_dtype="bfloat16", ref=yref, absref=absref, terms=2 * 9 + 1)
out["bfloat16"] = {"dtype": str(y.dtype), **compare(y.double().numpy(), yref, tol)}
groups = {
    "stride_phase": [c for c in supported if c.spec.kwargs["stride"] != 1],
    "k_tail_unmasked": supported[::2],
    "float16_accumulation": [c for c in supported if "float16" in c.spec.dtypes],
}
out["planted"] = {}
for name, cases in groups.items():
    report = verify("conv", wrapper(variant=m._VARIANTS[name]), cases, name=name)
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
def test_implicit_gemm_passes_small_conv_cases_under_the_interpreter(interpreted):
    assert interpreted["supported"] >= 55, interpreted
    assert interpreted["conv"]["passed"], interpreted["conv"]["failures"]
    assert interpreted["conv"]["counts"]["pass"] == interpreted["supported"]
    assert interpreted["refused"] == ["the Triton implicit GEMM is written for 1 and 2 spatial "
                                      "axes, not 3"]


@needs_triton
def test_fused_relu_passes_under_the_interpreter(interpreted):
    relu = interpreted["conv_relu"]
    expected = interpreted["supported"] - interpreted["supported_nonfinite"]
    assert relu["cases"] == expected and relu["passed"], relu["failures"]


@needs_triton
def test_bfloat16_within_the_direct_bound_under_the_interpreter(interpreted):
    got = interpreted["bfloat16"]
    assert got["dtype"] == "torch.bfloat16" and got["passed"], got


@needs_triton
@pytest.mark.parametrize("variant", ["stride_phase", "k_tail_unmasked", "float16_accumulation"])
def test_planted_kernel_mistakes_are_rejected(interpreted, variant):
    got = interpreted["planted"][variant]
    assert got["cases"] > 0 and not got["passed"], got
    assert {status for _, status, _ in got["failures"]} == {"FAIL"}, got["failures"]


# ---------------------------------------------------------------------------------------
# cudnn_torch's code on CPU tensors (the cuDNN call itself needs a GPU)
# ---------------------------------------------------------------------------------------

def _cpu_tensor(a):
    import torch

    return None if a is None else torch.from_numpy(np.ascontiguousarray(a))


def _on_cpu(module, op):
    fn = getattr(module, op)

    def call(*arrays, **kwargs):
        return fn(*[_cpu_tensor(a) if isinstance(a, np.ndarray) else a for a in arrays], **kwargs)

    call.__name__ = f"{module.__name__.rsplit('.', 1)[1]}_{op}_on_cpu"
    return call


@pytest.mark.parametrize("op, step", [("conv", 3), ("conv_relu", 3), ("conv_transpose", 1),
                                      ("conv_grad_input", 4), ("conv_grad_weight", 4),
                                      ("conv_grad_bias", 1)])
def test_cudnn_torch_code_passes_small_cases_on_cpu_tensors(op, step):
    from candidates.conv import cudnn_torch

    cases = (small_conv_relu_cases() if op == "conv_relu" else suite("small", op))[::step]
    report = verify(op, _on_cpu(cudnn_torch, op), cases)
    assert report.passed and report.counts()["pass"] == len(cases), str(report)


@pytest.mark.parametrize("module", ["cudnn_autotune_torch", "cudnn_tf32_torch"])
def test_variants_serve_the_same_ops_with_their_settings(module):
    import inspect

    from candidates.conv import cudnn_torch

    mod = importlib.import_module(f"candidates.conv.{module}")
    assert mod.SETTINGS != cudnn_torch.SETTINGS and mod.DEVICE == "gpu"
    for op in ("conv", "conv_relu", "conv_transpose", "conv_grad_input", "conv_grad_weight"):
        assert (inspect.signature(getattr(mod, op)).parameters.keys()
                == inspect.signature(getattr(cudnn_torch, op)).parameters.keys())
    case = suite("small", "conv")[11]
    assert verify("conv", _on_cpu(mod, "conv"), [case]).passed


def test_precision_settings_are_set_for_the_call_and_restored():
    import torch

    from candidates.conv import cudnn_torch

    cudnn = torch.backends.cudnn

    def state():
        return cudnn.benchmark, cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision

    before = state()
    with cudnn_torch.precision(cudnn_torch.Settings(benchmark=True, tf32=True)):
        assert state() == (True, "tf32", "tf32")
    assert state() == before
    with pytest.raises(ZeroDivisionError):
        with cudnn_torch.precision(cudnn_torch.Settings(benchmark=False, tf32=False)):
            assert state() == (False, "ieee", "ieee")
            1 / 0
    assert state() == before


def test_error_models_of_the_cudnn_variants():
    from candidates.conv import cudnn_autotune_torch, cudnn_tf32_torch, cudnn_torch

    f32 = suite("small", "conv")[11].spec
    assert f32.dtype == "float32"
    f16 = next(c.spec for c in suite("small", "conv") if c.spec.dtype == "float16")
    f64 = next(c.spec for c in suite("small", "conv") if c.spec.dtype == "float64")
    assert cudnn_torch.ERROR == cudnn_autotune_torch.ERROR == "direct"
    assert cudnn_tf32_torch.ERROR(f32) == "tf32"
    assert cudnn_tf32_torch.ERROR(f16) == cudnn_tf32_torch.ERROR(f64) == "direct"
    assert registry.get("conv", "cudnn_tf32_torch").error_model(f32) == "tf32"


@pytest.mark.parametrize("op", ["max_pool", "avg_pool", "lp_pool", "max_pool_grad",
                                "avg_pool_grad", "lp_pool_grad"])
def test_pool_cudnn_torch_code_on_cpu_tensors(op):
    from candidates.pool import cudnn_torch

    cases = [c for c in suite("small", op) if cudnn_torch.supports(c.spec) is None][::3]
    error = cudnn_torch.ERROR(cases[0].spec)
    same_model = [c for c in cases if cudnn_torch.ERROR(c.spec) == error]
    report = verify(op, _on_cpu(cudnn_torch, op), same_model, error=error)
    assert report.passed, str(report)


# ---------------------------------------------------------------------------------------
# The 'tf32' precision class
# ---------------------------------------------------------------------------------------

def to_tf32(a: np.ndarray) -> np.ndarray:
    """float32 rounded to TF32 (10 explicit significand bits), nearest, ties to even."""
    bits = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0xFFF + ((bits >> 13) & 1)) & ~np.uint64(0x1FFF)
    return bits.astype(np.uint32).view(np.float32)


def test_to_tf32_keeps_ten_significand_bits():
    assert to_tf32(np.float32(1 + 2**-10)) == np.float32(1 + 2**-10)
    assert to_tf32(np.float32(1 + 2**-11)) == np.float32(1.0)                 # tie: to even
    assert to_tf32(np.float32(1 + 3 * 2**-11)) == np.float32(1 + 2**-9)       # tie: to even
    assert to_tf32(np.float32(1 + 2**-11 + 2**-20)) == np.float32(1 + 2**-10)


def tf32_conv(x, w, bias=None, **kwargs):
    """What a TF32 tensor-core conv computes: TF32 inputs, exact products, wide sums,
    one rounding to float32 (the bias is added in float32, not converted)."""
    from refimpl import conv as ref

    y = ref.conv(to_tf32(x).astype(np.float64), to_tf32(w).astype(np.float64),
                 None if bias is None else bias.astype(np.float64), **kwargs)
    return y.astype(np.float32)


def test_tf32_results_pass_their_class_and_fail_the_float32_bound():
    cases = [c for c in suite("small", "conv") if set(c.spec.dtypes) == {"float32"}][:12]
    assert len(cases) == 12
    own = verify("conv", tf32_conv, cases, error="tf32", name="tf32_conv")
    assert own.passed and own.counts()["pass"] == len(cases), str(own)
    float32 = verify("conv", tf32_conv, cases, error="direct", name="tf32_conv")
    assert not float32.passed
    failed = [r for r in float32.rows if r.status == "FAIL"]
    assert len(failed) >= len(cases) // 2
    for row in failed:   # reported with its measured error, in the float32 class
        assert row.error_model == "direct" and row.max_error > 0 and row.worst > 1
        assert "> bound" in row.detail


def test_tf32_bound_by_hand():
    from convbench.tolerance import bound, gamma

    ref, absref = np.array([1.0]), np.array([10.0])
    got = bound("tf32", result_dtype="float32", ref=ref, absref=absref, terms=9)
    by_hand = ((1 + 2 * 2**-11) ** 2 * (1 + 9 * 2**-24 / (1 - 9 * 2**-24)) - 1) * 10.0
    assert got[0] == pytest.approx(by_hand, rel=1e-12)
    assert got[0] > 1000 * bound("direct", result_dtype="float32", ref=ref, absref=absref,
                                 terms=9)[0]
    # float64 results never use TF32: the float64 direct bound
    assert bound("tf32", result_dtype="float64", ref=ref, absref=absref, terms=9)[0] == \
        gamma(9, 2**-53) * 10.0


# ---------------------------------------------------------------------------------------
# convbench.gpu: the protocol against a fake device; bench's routing
# ---------------------------------------------------------------------------------------

class FakeDevice:
    """Events are host timestamps; memory is a counter the calls move."""

    name = "fake"

    def __init__(self):
        self.flushes = 0
        self.allocated = 5_000
        self.peak = self.allocated
        self.log = []

    def synchronize(self):
        pass

    def event(self):
        return {}

    def record(self, event):
        event["t"] = time.perf_counter()

    def elapsed_s(self, start, end):
        return end["t"] - start["t"]

    def flush_l2(self):
        self.flushes += 1
        self.log.append("flush")

    def memory_begin(self):
        self.peak = self.allocated
        return float(self.allocated)

    def memory_peak(self):
        return float(self.peak)

    def kernel(self, name, seconds, temp_bytes):
        def call():
            self.log.append(name)
            self.peak = max(self.peak, self.allocated + temp_bytes)
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass
            return np.zeros(3)
        return call


def test_gpu_protocol_events_flush_interleave_and_memory():
    from convbench import gpu
    from convbench.timing import Protocol

    dev = FakeDevice()
    bounds = {"slow": gpu.Bound(dev.kernel("slow", 2e-3, 4096), dev),
              "fast": gpu.Bound(dev.kernel("fast", 2e-4, 64), dev)}
    protocol = Protocol(warmup_s=0.01, sample_s=0.002, samples=7)
    got = gpu.measure(bounds, protocol)
    slow, fast = got["slow"], got["fast"]
    assert 1.5e-3 < slow.median < 2e-2 and 1.5e-4 < fast.median < slow.median
    assert slow.loops == fast.loops == 1                       # flushed: one call per sample
    assert len(slow.samples) >= 7 and len(fast.samples) > len(slow.samples)
    assert len(fast.samples) <= gpu.MAX_SAMPLES
    timed = dev.log[dev.log.index("flush"):]                    # after the warm-up
    assert timed.count("flush") == len(slow.samples) + len(fast.samples)
    assert timed[:4] == ["flush", "slow", "flush", "fast"]     # interleaved sample by sample
    assert slow.device_extra_bytes == 4096 and fast.device_peak_bytes == 5_000 + 64
    assert slow.extra()["clock"] == "cuda-events" and slow.host_median >= slow.min

    unflushed = gpu.measure({"fast": bounds["fast"]}, protocol, flush_l2=False)["fast"]
    assert unflushed.loops > 1 and len(unflushed.samples) == 7 and not unflushed.l2_flush


def test_gpu_transfer_timing():
    from convbench import gpu

    dev = FakeDevice()
    arrays = [np.ones((300, 300)), np.ones(5)]
    seconds = gpu.h2d_seconds(lambda a: a.copy(), arrays, dev)
    assert 0 < seconds < 1
    assert 0 <= gpu.d2h_seconds(np.ones(10), dev) < 1


def test_bench_times_gpu_candidates_with_device_events(monkeypatch):
    from candidates.correlate import ndimage_scipy
    from convbench import bench, gpu
    from convbench.registry import Candidate
    from convbench.timing import Protocol

    fake = types.ModuleType("fake_gpu_candidate")
    fake.LIBRARY, fake.DEVICE, fake.ERROR = "torch", "gpu", "direct"
    fake.supports = lambda spec: None
    fake.to_native = lambda a: np.array(a)
    fake.correlate = ndimage_scipy.correlate
    monkeypatch.setitem(sys.modules, "fake_gpu_candidate", fake)
    monkeypatch.setattr(registry, "_library_missing", lambda library, device: None)
    dev = FakeDevice()
    monkeypatch.setattr(gpu, "backend", lambda library: dev)
    case = make_case("correlate", [(64, 64), (3, 3)], "float32", border="reflect")
    on_gpu = Candidate("correlate", "fake_gpu", "fake_gpu_candidate")
    on_cpu = registry.get("correlate", "ndimage_scipy")
    rows = bench.run_case(case, [on_gpu, on_cpu], Protocol(warmup_s=0.005, sample_s=0.002),
                          isolate=False)   # the fake device counts in this process
    gpu_row, cpu_row = rows
    assert gpu_row["status"] == cpu_row["status"] == "pass"
    assert gpu_row["clock"] == "cuda-events" and gpu_row["l2_flush"] is True
    assert gpu_row["h2d_s"] > 0 and gpu_row["d2h_s"] >= 0 and dev.flushes > 0
    assert "clock" not in cpu_row and cpu_row["median"] > 0
    assert min(gpu_row["ratio"], cpu_row["ratio"]) == 1.0


def test_gpu_backend_refuses_without_a_device():
    if cuda_available():
        pytest.skip("this machine has a GPU")
    from convbench import gpu

    gpu._BACKENDS.pop("torch", None)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        gpu.backend("triton")


# ---------------------------------------------------------------------------------------
# Without a GPU: listed, unavailable, with the reason
# ---------------------------------------------------------------------------------------

@pytest.mark.skipif(cuda_available(), reason="this machine has a GPU")
def test_gpu_conv_candidates_unavailable_here():
    names = ("cudnn_torch", "cudnn_autotune_torch", "cudnn_tf32_torch", "implicit_gemm_triton")
    for op in ("conv", "conv_relu"):
        for name in names:
            cand = registry.get(op, name)
            assert cand.device == "gpu" and cand.unavailable() is not None
            assert "no GPU" in cand.unavailable() or "not importable" in cand.unavailable()
    assert registry.get("max_pool", "cudnn_torch").unavailable() == "unavailable: no GPU"


def test_gpu_suite_has_the_workloads():
    conv = {c.name for c in suite("gpu", "conv")}
    assert {"V2", "V8", "S1", "S2", "R1", "R3", "R4", "R6", "R10", "R13",
            "seed-rgb-filters"} <= conv
    for op in ("conv_grad_input", "conv_grad_weight", "conv_relu"):
        cases = suite("gpu", op)
        assert {c.name for c in cases} == conv - {"seed-rgb-filters"}
        assert {c.spec.dtype for c in cases} == {"float32", "float16"}
    r3 = next(c for c in suite("gpu", "conv") if c.name == "R3")
    assert r3.spec.shapes[0] == (32, 64, 56, 56)                     # ResNet-50 at N = 32
    s2 = next(c for c in suite("gpu", "conv") if c.name == "S2")
    assert s2.spec.shapes[0][0] == 128 and s2.spec.output_shape()[2:] == (56, 56)
    # GFLOP as CONTRIBUTING.md's layer table gives it: 2*N*O*C*R*S*P*Q
    v2 = next(c for c in suite("gpu", "conv") if c.name == "V2").spec
    n, o, (p, q) = v2.shapes[0][0], v2.shapes[1][0], v2.output_shape()[2:]
    assert 2 * n * o * 64 * 9 * p * q / 1e9 == pytest.approx(118.38, abs=0.01)
    names = {c.name for c in suite("gpu", "correlate")}
    assert {"seed-fft-1k", "seed-fft-10k", "seed-rgb-emboss", "gpu-borders"} <= names
    sizes = {c.spec.shapes[0] for c in suite("gpu", "correlate") if c.name == "seed-fft-10k"}
    assert sizes == {(9000, 9000), (10000, 10000)}


# ---------------------------------------------------------------------------------------
# On a GPU
# ---------------------------------------------------------------------------------------

GPU_OPS = ("conv", "conv_relu", "conv_transpose", "conv_grad_input", "conv_grad_weight",
           "conv_grad_bias")


def _small(op):
    return small_conv_relu_cases() if op == "conv_relu" else suite("small", op)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("op", GPU_OPS)
def test_gpu_candidates_pass_small_cases_on_the_gpu(op):
    cands = [c for c in registry.candidates(op) if c.device == "gpu" and c.unavailable() is None]
    assert cands
    report = verify_candidates(cands, _small(op))
    assert report.passed, str(report)


# Layers large enough for cuDNN's tensor-core (TF32) kernels, with a short reduction: the
# float32 bound gamma_K * scale grows like K**2 while TF32's error grows like sqrt(K), so
# TF32 is caught by the float32 bound where K is small (1x1 with C = 16: K = 16; 3x3 with
# C = 8: K = 72). With K in the thousands (V8: 4608) TF32's typical error fits under the
# worst-case float32 bound and such a case would pass 'direct': that is the bound, not TF32.
TF32_CASES = (((8, 16, 64, 64), (64, 16, 1, 1), {}),
              ((8, 8, 64, 64), (32, 8, 3, 3), {"padding": 1}))


@pytest.mark.gpu
@needs_cuda
def test_real_tf32_fails_the_float32_bound_and_passes_its_own():
    import torch

    if torch.cuda.get_device_capability()[0] < 8:
        pytest.skip("no TF32 before Ampere (compute capability 8.0)")
    tf32 = registry.get("conv", "cudnn_tf32_torch")
    cases = [make_case("conv", [x, w], "float32", name="tf32", **kw) for x, w, kw in TF32_CASES]
    before = torch.backends.cudnn.conv.fp32_precision
    own = verify_candidates([tf32], cases)
    assert own.passed and {r.error_model for r in own.rows} == {"tf32"}, str(own)
    fn = tf32.function()

    def same_results(*arrays, **kwargs):
        return fn(*[tf32.to_native(a) if isinstance(a, np.ndarray) else a for a in arrays],
                  **kwargs)

    float32 = verify("conv", same_results, cases, error="direct", name="cudnn_tf32_torch")
    assert not float32.passed, str(float32)
    assert all(r.status == "FAIL" and r.max_error > 0 and "> bound" in r.detail
               for r in float32.rows), str(float32)
    assert torch.backends.cudnn.conv.fp32_precision == before        # restored
    # the same layer with TF32 off is inside the float32 bound
    assert verify_candidates([registry.get("conv", "cudnn_torch")], cases[:1]).passed


@pytest.mark.gpu
@needs_cuda
@needs_triton
@pytest.mark.parametrize("variant", ["stride_phase", "k_tail_unmasked", "float16_accumulation"])
def test_planted_mistakes_compiled_on_the_gpu_are_rejected(variant):
    from candidates.conv import implicit_gemm_triton as m

    def fn(x, w, bias=None, **kw):
        t = lambda a: None if a is None else m.to_native(np.asarray(a))  # noqa: E731
        return m._launch(t(x), t(w), t(bias), variant=m._VARIANTS[variant], **kw)

    cases = [c for c in suite("small", "conv") if m.supports(c.spec) is None]
    assert not verify("conv", fn, cases, name=variant).passed


@pytest.mark.gpu
@needs_cuda
def test_fused_and_unfused_conv_relu_are_timed_with_device_events():
    from convbench import bench
    from convbench.timing import QUICK

    case = make_case("conv_relu", [(8, 64, 28, 28), (64, 64, 3, 3), (64,)], "float32", padding=1)
    cands = [c for c in registry.candidates("conv_relu") if c.unavailable() is None]
    rows = bench.run_case(case, cands, QUICK)
    timed = [r for r in rows if not math.isnan(r["median"])]
    assert {r["candidate"] for r in timed} >= {"cudnn_torch", "implicit_gemm_triton"}, rows
    assert all(r["clock"] == "cuda-events" and r["device_peak_bytes"] > 0 for r in timed)
