"""Plans and the public functions' plan cache: chosen once, value checks every call.

Expected values come from the float64 oracles (refimpl) or from scipy; the cache is
observed through ``convbench.plans.cache_info()`` and ``Plan.explain()``.
"""
from __future__ import annotations

import numpy as np
import pytest

import convbench
from convbench import machine, plans
from refimpl import correlate as ref

RNG = np.random.default_rng(7)
X = RNG.standard_normal((24, 20)).astype(np.float32)
W = RNG.standard_normal((3, 5)).astype(np.float32)


@pytest.fixture(autouse=True)
def fresh_cache():
    plans.clear_cache()
    yield
    plans.clear_cache()


def close(got, want, rtol=1e-5):
    want = np.asarray(want, dtype=np.float64)
    scale = np.max(np.abs(want), initial=1.0)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=0, atol=rtol * scale)


# ------------------------------------------------------------------------------ plan()

def test_plan_from_example_arrays_runs_like_the_function():
    p = convbench.plan("correlate", X, W, border="wrap")
    want = ref.correlate(X.astype(np.float64), W.astype(np.float64), border="wrap")
    close(p(X, W), want)
    close(convbench.correlate(X, W, border="wrap"), want)


def test_plan_from_shapes_and_dtypes():
    p = convbench.plan("correlate", shapes=[X.shape, W.shape], dtypes="float32", border="edge")
    assert p.spec.shapes == (X.shape, W.shape) and p.spec.dtypes == ("float32", "float32")
    close(p(X, W), ref.correlate(X.astype(np.float64), W.astype(np.float64), border="edge"))


def test_plan_of_conv_and_max_pool_on_tensors():
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(RNG.standard_normal((2, 3, 9, 8)).astype(np.float32))
    w = torch.from_numpy(RNG.standard_normal((4, 3, 3, 3)).astype(np.float32))
    p = convbench.plan("conv", x, w, padding=1)
    y = p(x, w)
    assert isinstance(y, torch.Tensor)
    close(y.numpy(), torch.nn.functional.conv2d(x.double(), w.double(), padding=1).numpy())
    q = convbench.plan("max_pool", x, kernel_size=2)
    close(q(x).numpy(), torch.nn.functional.max_pool2d(x, 2).numpy(), rtol=0)


def test_plan_refuses_arrays_of_another_description():
    p = convbench.plan("correlate", X, W)
    with pytest.raises(ValueError, match=r"made for numpy arrays .*x \(24, 20\) float32"):
        p(X[:10], W)
    with pytest.raises(ValueError, match="float64"):
        p(X.astype(np.float64), W)
    with pytest.raises(TypeError, match="takes the arrays"):
        p(X, W, W)


def test_plan_argument_errors_name_the_argument():
    with pytest.raises(TypeError, match="not both"):
        convbench.plan("correlate", X, W, shapes=[X.shape, W.shape])
    with pytest.raises(ValueError, match="library must be one of"):
        convbench.plan("correlate", shapes=[X.shape, W.shape], library="jax")
    with pytest.raises(ValueError, match="unknown op"):
        convbench.plan("corelate", X, W)
    with pytest.raises(ValueError, match="border"):
        convbench.plan("correlate", X, W, border="mirrored")
    with pytest.raises(ValueError, match="accuracy"):
        convbench.plan("correlate", X, W, accuracy="roughly")


def test_explain_names_candidate_reason_model_and_per_call_checks():
    p = convbench.plan("correlate", X, W)
    text = p.explain()
    chosen = p.choices[0].candidate.name
    assert f"runs: {chosen}" in text
    assert "why: " in text and ("choice table" in text or "preference list" in text)
    assert f"error model: {p.choices[0].candidate.error_model(p.spec)}" in text
    assert "per call: a finite-values check" in text
    named = convbench.plan("correlate", X, W, algorithm="shift_add_numpy").explain()
    assert "runs: shift_add_numpy" in named and "algorithm='shift_add_numpy' was asked for" in named


# ------------------------------------------------------------------- the plan cache

def test_repeated_calls_hit_the_cache_and_other_calls_miss():
    for _ in range(3):
        convbench.correlate(X, W)
    info = plans.cache_info()
    assert (info["misses"], info["size"]) == (1, 1)
    convbench.correlate(X, W, border="wrap")          # another keyword value
    convbench.correlate(X.astype(np.float64), W)      # another dtype
    convbench.correlate(X[::2], W)                    # another shape
    convbench.correlate(X.astype(">f4"), W)           # non-native byte order: never cached
    convbench.correlate(X.astype(">f4"), W)
    assert plans.cache_info()["misses"] == 6 and plans.cache_info()["size"] == 4


def test_keyword_types_are_part_of_the_key():
    convbench.correlate(X, W, cval=0)
    with pytest.raises(TypeError, match="cval"):     # False == 0 in Python, not here
        convbench.correlate(X, W, cval=False)


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(plans, "CACHE_SIZE", 3)
    for n in range(8, 16):
        convbench.correlate(X[:n], W)
    assert plans.cache_info()["size"] == 3


def test_a_kernel_changed_in_place_is_a_new_plan():
    w = W.copy()
    first = convbench.correlate(X, w)
    w[1, 2] += 1.0
    second = convbench.correlate(X, w)
    assert plans.cache_info()["misses"] == 2
    close(second, ref.correlate(X.astype(np.float64), w.astype(np.float64)))
    assert not np.allclose(first, second)


def test_value_checks_stay_per_call():
    """A plan made on finite values still places NaN/Inf as the oracle does, and a kernel
    holding NaN reaches only candidates declaring NONFINITE."""
    convbench.correlate(X, W)
    x = X.copy()
    x[5, 7], x[10, 3] = np.nan, np.inf
    got = convbench.correlate(x, W)
    want = ref.correlate(x.astype(np.float64), W.astype(np.float64))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    finite = np.isfinite(want)
    close(np.where(finite, got, 0), np.where(finite, want, 0))
    w = W.copy()
    w[0, 0] = np.nan
    want = ref.correlate(X.astype(np.float64), w.astype(np.float64))
    assert np.isnan(want).all()     # by hand: every output takes NaN * (x or cval 0)
    np.testing.assert_array_equal(np.isnan(convbench.correlate(X, w)), np.isnan(want))


def test_exact_integer_bound_is_per_call():
    """int32 images with an integer out_dtype are exact whatever a cached plan saw first."""
    w = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.int32)
    small = np.arange(30, dtype=np.int32).reshape(5, 6)
    convbench.correlate(small, w, out_dtype="int64")
    big = small + np.int32(2**28)
    got = convbench.correlate(big, w, out_dtype="int64")
    want = ref.correlate(big, w, out_dtype="int64")
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    assert int(got[2, 2]) == 16 * 2**28 + int((small[1:4, 1:4] * w).sum())  # by hand


def test_memory_is_checked_on_every_call(monkeypatch):
    convbench.correlate(X, W)
    monkeypatch.setattr(machine, "available_memory", lambda now=None: 100)
    with pytest.raises(ValueError, match="would need about"):
        convbench.correlate(X, W)


def test_a_new_choice_table_is_followed(tmp_path, monkeypatch):
    """Plans are forgotten when the table in use changes (noticed within TABLE_CHECK_S)."""
    convbench.correlate(X, W)
    assert plans.cache_info()["size"] == 1
    monkeypatch.setattr(plans, "TABLE_CHECK_S", 0.0)
    monkeypatch.setenv("CONVBENCH_CACHE", str(tmp_path))
    (tmp_path / "choices.json").write_text(
        '{"schema": "convbench-choices", "version": 1, "rows": [{"op": "correlate", "rank": 2, '
        '"pixels": 480, "taps": 15, "kernel": [3, 5], "separable": false, "dtype": "float32", '
        '"border": "constant", "ranking": ["shift_add_numpy"]}]}')
    plans._table["next_check"] = 0.0
    convbench.correlate(X, W)
    assert plans.cache_info()["size"] == 1 and plans.cache_info()["misses"] == 1
    p = next(iter(plans._cache.values()))
    assert p.choices[0].candidate.name == "shift_add_numpy"


def test_unhashable_keywords_take_the_uncached_path():
    got = convbench.correlate(X, W, origin=[0, 1])
    close(got, ref.correlate(X.astype(np.float64), W.astype(np.float64), origin=(0, 1)))
    assert plans.cache_info()["size"] == 0


def test_cpu_tensors_come_back_as_tensors_with_numpy_choice():
    torch = pytest.importorskip("torch")
    x, w = torch.from_numpy(X), torch.from_numpy(W)
    got = convbench.correlate(x, w)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    close(got.numpy(), ref.correlate(X.astype(np.float64), W.astype(np.float64)))
    tensor_plan = convbench.plan("correlate", x, w)
    numpy_plan = convbench.plan("correlate", X, W)
    assert tensor_plan.choices[0].candidate.name == numpy_plan.choices[0].candidate.name


def test_pool_choice_on_the_cpu_is_the_stated_preference():
    # max_pool's forward stays with strided_numpy; the gradients and the average pool go
    # to pool_torch (measured faster on the seed CNN's and ResNet's pools), for numpy
    # arrays and CPU tensors alike; a max_pool_grad torch refuses (a window of padding
    # only) falls back to strided_numpy
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    dy = RNG.standard_normal((2, 3, 4, 4)).astype(np.float32)
    for a, g in ((x, dy), (torch.from_numpy(x), torch.from_numpy(dy))):
        assert convbench.plan("max_pool", a, kernel_size=2).chosen(a).name == "strided_numpy"
        grad = convbench.plan("max_pool_grad", g, a, kernel_size=2)
        assert grad.chosen(g, a).name == "pool_torch"
        assert convbench.plan("avg_pool", a, kernel_size=2).chosen(a).name == "pool_torch"
        avg = convbench.plan("avg_pool_grad", g, input_shape=x.shape, kernel_size=2)
        assert avg.chosen(g).name == "pool_torch"
    # kernel 2, dilation 3, padding 1 on a 2-wide input: the one window reads -1 and 2,
    # padding only, where torch's index points elsewhere: strided_numpy runs it
    tiny = RNG.standard_normal((1, 1, 2, 2)).astype(np.float32)
    kw = dict(kernel_size=2, stride=1, padding=1, dilation=3)
    dy_tiny = np.ones((1, 1, 1, 1), np.float32)
    plan = convbench.plan("max_pool_grad", dy_tiny, tiny, **kw)
    assert plan.chosen(dy_tiny, tiny).name == "strided_numpy"
    assert convbench.api.apply("max_pool_grad", (dy_tiny, tiny), ("dy", "x"), kw).sum() == 0


# ------------------------------------------------------------ the dispatch benchmark

def test_dispatch_benchmark_times_only_right_results(monkeypatch):
    """Each timed function is checked against the candidate's own result first; a wrong
    public result stops the row instead of timing it."""
    from convbench import dispatch
    from convbench.timing import Protocol

    call = dispatch.by_name("correlate 16x16, 3x3")
    tiny = Protocol(warmup_s=0.0, sample_s=0.0005, samples=7)
    row = dispatch.measure_call(call, "numpy", tiny)
    assert row["candidate"] == convbench.plan("correlate", *dispatch._arrays(call)).choices[0].candidate.name
    assert set(row["peers"]) == {"cv2.filter2D", "scipy.ndimage.correlate"}
    assert all(v > 0 for v in (row["convbench_us"], row["candidate_us"], *row["peers"].values()))
    assert np.isfinite(row["overhead_us"])
    monkeypatch.setattr(convbench, "correlate", lambda x, w, **kw: np.zeros_like(x))
    with pytest.raises(AssertionError, match="does not agree"):
        dispatch.measure_call(call, "numpy", tiny)


def test_dispatch_overhead_leaves_the_candidate_in_place():
    from convbench import dispatch
    from convbench.timing import Protocol

    call = dispatch.by_name("max_pool (1,4,16,16), 2")
    import candidates.pool.strided_numpy as module

    before = module.max_pool
    dispatch.dispatch_overhead(call, "numpy", Protocol(warmup_s=0.0, sample_s=0.0005, samples=7))
    assert module.max_pool is before and plans.cache_info()["size"] == 0


def test_asv_dispatch_suite_covers_every_call():
    import suites.dispatch

    from convbench import dispatch

    names, libraries, functions = suites.dispatch.Dispatch.params
    assert names == [c.name for c in dispatch.CALLS] and libraries == list(dispatch.LIBRARIES)
    assert {"convbench", "candidate", "cv2.filter2D", "F.conv2d", "F.max_pool2d"} <= set(functions)
    assert suites.dispatch.DispatchOverhead.params == [names, libraries]
    bench = suites.dispatch.Dispatch()
    with pytest.raises(NotImplementedError):      # a peer of another call: skipped by asv
        bench.setup("max_pool (1,4,16,16), 2", "numpy", "F.conv2d")
    bench.setup("max_pool (1,4,16,16), 2", "numpy", "F.max_pool2d")
    bench.time_call("max_pool (1,4,16,16), 2", "numpy", "F.max_pool2d")
