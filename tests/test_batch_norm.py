"""Batch normalisation: hand-derived goldens, agreement with torch autograd in float64, the
error model (the variance's cancellation), every candidate verified on the small cases,
channels-last inputs, planted bugs rejected, the public function (running statistics
updated in place) and every bad-input error before any work."""
from __future__ import annotations

import doctest

import numpy as np
import pytest

import convbench
import refimpl.batch_norm
from convbench import registry
from convbench.api import apply
from convbench.cases import suite
from convbench.ops import get_op
from convbench.tolerance import bound, compare
from refimpl.batch_norm import batch_norm, batch_norm_grad, channel_statistics

torch = pytest.importorskip("torch")
F = torch.nn.functional

OPS = ("batch_norm", "batch_norm_grad")
GRAD_NAMES = ("dy", "x", "running_mean", "running_var", "weight")


def test_doctests():
    result = doctest.testmod(refimpl.batch_norm)
    assert result.failed == 0 and result.attempted >= 3


# ---------------------------------------------------------------------------------------
# Goldens derived by hand
# ---------------------------------------------------------------------------------------

def test_training_golden_two_channels():
    # channel 0: 0 2 4 6 -> mean 3, var (9+1+1+9)/4 = 5, unbiased 20/3; eps 4: sqrt(9) = 3
    # channel 1: 1 1 1 1 -> mean 1, var 0: sqrt(0 + 4) = 2, y = 0 * w + b = b
    x = np.array([[[0., 2.], [1., 1.]], [[4., 6.], [1., 1.]]])          # (N=2, C=2, L=2)
    y, m, v = batch_norm(x, np.array([1., 0.]), np.array([2., 1.]), np.array([3., 5.]),
                         np.array([-1., 7.]), training=True, momentum=0.25, eps=4.0)
    # y0 = (x - 3) / 3 * 3 - 1 = x - 4
    np.testing.assert_allclose(y[:, 0], [[-4., -2.], [0., 2.]], rtol=1e-15)
    np.testing.assert_array_equal(y[:, 1], [[7., 7.], [7., 7.]])
    # mean: 0.75 * (1, 0) + 0.25 * (3, 1); var: 0.75 * (2, 1) + 0.25 * (20/3, 0)
    np.testing.assert_allclose(m, [1.5, 0.25], rtol=1e-15)
    np.testing.assert_allclose(v, [1.5 + 5 / 3, 0.75], rtol=1e-15)


def test_gradient_golden_eval_and_training():
    x = np.array([[1.], [2.], [3.], [4.], [5.]])
    dy = np.array([[1.], [0.], [0.], [0.], [0.]])
    # eval: running mean 1, var 3, eps 1: invstd 1/2; dx = dy * w / 2, w = 4
    dx, dw, db = batch_norm_grad(dy, x, np.array([1.]), np.array([3.]), np.array([4.]), eps=1.0)
    np.testing.assert_allclose(dx.ravel(), [2., 0., 0., 0., 0.])
    np.testing.assert_allclose(dw, [0.])            # xhat of x[0] = (1 - 1) / 2 = 0
    np.testing.assert_allclose(db, [1.])
    # training, w = 2 (the doctest's with w = 1, doubled): mean 3, var 2, eps 2 -> invstd 1/2
    dx, dw, db = batch_norm_grad(dy, x, np.array([0.]), np.array([1.]), np.array([2.]),
                                 training=True, eps=2.0)
    np.testing.assert_allclose(dx.ravel(), [0.6, -0.3, -0.2, -0.1, 0.], atol=1e-15)
    np.testing.assert_allclose(dw, [-1.])
    np.testing.assert_allclose(db, [1.])


# ---------------------------------------------------------------------------------------
# Agreement with torch autograd in float64
# ---------------------------------------------------------------------------------------

TORCH_SHAPES = [((2, 3), True), ((4, 2, 5), True), ((2, 3, 4, 5), True),
                ((2, 2, 3, 2, 3), True), ((3, 2, 6), False), ((2, 3, 3, 4), False)]


@pytest.mark.parametrize("shape,training", TORCH_SHAPES)
def test_oracles_match_torch_autograd(shape, training):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(1.5, 2.0, shape)
    c = shape[1]
    rm, rv = rng.normal(size=c), rng.uniform(0.5, 2, c)
    w, b = rng.normal(size=c), rng.normal(size=c)
    dy = rng.normal(size=shape)
    y, m, v = batch_norm(x, rm, rv, w, b, training=training, momentum=0.3, eps=1e-3)
    dx, dw, db = batch_norm_grad(dy, x, rm, rv, w, training=training, eps=1e-3)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    ty = F.batch_norm(tx, trm, trv, tw, tb, training=training, momentum=0.3, eps=1e-3)
    ty.backward(torch.tensor(dy))
    for ours, theirs in ((y, ty), (m, trm), (v, trv), (dx, tx.grad), (dw, tw.grad),
                         (db, tb.grad)):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_statistics_are_correctly_rounded_sums():
    # 1e16 + 1 - 1e16 cancels in float64 naive order; fsum keeps the 1
    x = np.array([1e16, 1., -1e16, 3.]).reshape(4, 1)
    mean, var = channel_statistics(x)
    assert mean[0] == 1.0


# ---------------------------------------------------------------------------------------
# The error model
# ---------------------------------------------------------------------------------------

def _bound_of(case, k=0):
    spec = case.spec
    op = spec.operation
    refs = op.reference_outputs(spec, case.arrays())
    ref, scale = refs[k]
    return ref, bound("direct", result_dtype=op.output_dtypes(spec)[k], ref=ref, absref=scale,
                      terms=op.terms(spec))


def test_bound_grows_with_mean_over_std():
    from convbench.cases.batch_norm import batch_norm_case

    centred = batch_norm_case("batch_norm", (4, 2, 3, 3), "float32", training=True)
    offset = batch_norm_case("batch_norm", (4, 2, 3, 3), "float32", "offset", training=True)
    ref_c, tol_c = _bound_of(centred)
    ref_o, tol_o = _bound_of(offset)
    # |y| is O(1) in both; |mean| / std ~ 1000 makes the tolerance ~ 1000x larger
    assert 300 < np.median(tol_o) / np.median(tol_c) < 3000
    assert np.median(tol_o / (np.abs(ref_o) + 1)) < 1e-3    # still a tight bound


def _one_pass_float32(x, running_mean, running_var, weight, bias, training=False,
                      momentum=0.1, eps=1e-5):
    """Correct formulas, but var = E[x**2] - mean**2 with float32 sums: cancels."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    x32 = x.astype(np.float32)
    if training:
        n = x.size // x.shape[1]
        mean = x32.sum(axis=axes, dtype=np.float32) / np.float32(n)
        var = (x32 * x32).sum(axis=axes, dtype=np.float32) / np.float32(n) - mean * mean
    else:
        mean, var = running_mean.astype(np.float32), running_var.astype(np.float32)
    y = (x32 - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + np.float32(eps)) \
        * weight.reshape(shape) + bias.reshape(shape)
    if training:
        rm = (1 - momentum) * running_mean + momentum * mean
        rv = (1 - momentum) * running_var + momentum * var * n / (n - 1)
    else:
        rm, rv = running_mean, running_var
    return y.astype(x.dtype), rm.astype(running_mean.dtype), rv.astype(running_var.dtype)


def test_one_pass_float32_variance_fails_only_where_it_cancels():
    cases = [c for c in suite("small", "batch_norm") if c.spec.dtypes[0] == "float32"
             and "nonfinite" not in c.id]
    report = convbench.verify("batch_norm", _one_pass_float32, cases)
    failed = {r.case for r in report.rows if r.status != "pass"}
    assert failed and all("offset" in c for c in failed), str(report)


# ---------------------------------------------------------------------------------------
# Every candidate on the small cases; channels-last inputs
# ---------------------------------------------------------------------------------------

@pytest.fixture
def one_thread():
    from convbench.thread_settings import threads

    with threads(1):
        yield


@pytest.mark.parametrize("op", OPS)
def test_every_candidate_passes_the_small_cases(op, one_thread):
    from convbench.verification import verify_candidates

    report = verify_candidates(registry.candidates(op), suite("small", op))
    assert report.passed, str(report)
    fused = [r for r in report.rows if r.candidate == "fused_numba"]
    assert all(r.status == "pass" for r in fused), str(report)   # NaN/Inf cases included


@pytest.mark.parametrize("name", ["fused_numba", "batch_norm_torch"])
@pytest.mark.parametrize("op", OPS)
def test_channels_last_and_permuted_layouts(op, name, one_thread):
    from convbench.cases.batch_norm import batch_norm_case

    candidate = registry.get(op, name)
    for shape, training in (((3, 4, 5, 6), True), ((2, 3, 4, 3, 5), False), ((6, 5), True)):
        case = batch_norm_case(op, shape, "float32", training=training)
        arrays = list(case.arrays())
        xi = 0 if op == "batch_norm" else 1
        for i in range(xi + 1 if op == "batch_norm" else 2):
            a = arrays[i]
            last = np.ascontiguousarray(np.moveaxis(a, 1, -1))      # channels last in memory
            arrays[i] = np.moveaxis(last, -1, 1)
            assert arrays[i].shape == a.shape and not arrays[i].flags.c_contiguous or a.ndim == 2
        native = [candidate.to_native(a) for a in arrays]
        out = case.spec.operation.call(candidate.function(), native, case.spec)
        refs = case.spec.operation.reference_outputs(case.spec, case.arrays())
        for k, (got, (ref, scale)) in enumerate(zip(out, refs)):
            dtype = case.spec.operation.output_dtypes(case.spec)[k]
            tol = bound("direct", result_dtype=dtype, ref=ref, absref=scale, terms=10)
            verdict = compare(np.asarray(got if isinstance(got, np.ndarray) else got.numpy()),
                              ref, tol, out_dtype=dtype)
            assert verdict["passed"], (shape, k, verdict)


# ---------------------------------------------------------------------------------------
# Planted bugs: convbench.verify rejects each one, on the cases that expose it
# ---------------------------------------------------------------------------------------

def _statistics64(x):
    axes = (0,) + tuple(range(2, x.ndim))
    x = x.astype(np.float64)
    return x.mean(axis=axes), x.var(axis=axes), x.size // x.shape[1]


def _column(v, x):
    return np.asarray(v, dtype=np.float64).reshape((1, -1) + (1,) * (x.ndim - 2))


def _numpy_batch_norm(x, running_mean, running_var, weight, bias, training=False, momentum=0.1,
                      eps=1e-5, variance_in_norm=None, running_variance=None, denominator=None,
                      momentum_weights=None, updated=True):
    """A float64 numpy batch_norm whose parts the planted bugs replace."""
    rm, rv = (np.asarray(a, dtype=np.float64) for a in (running_mean, running_var))
    if training:
        mean, var, n = _statistics64(x)
        unbiased = var * n / (n - 1)
    else:
        mean, var, n, unbiased = rm, rv, None, rv
    norm_var = var if variance_in_norm is None else variance_in_norm(var, unbiased)
    den = np.sqrt(norm_var + eps) if denominator is None else denominator(norm_var, eps)
    y = (x - _column(mean, x)) / _column(den, x) * _column(weight, x) + _column(bias, x)
    if training and updated:
        keep, take = ((1 - momentum, momentum) if momentum_weights is None
                      else momentum_weights(momentum))
        run_var = unbiased if running_variance is None else running_variance(var, unbiased)
        rm, rv = keep * rm + take * mean, keep * rv + take * run_var
    return (y.astype(x.dtype), rm.astype(np.asarray(running_mean).dtype),
            rv.astype(np.asarray(running_var).dtype))


def _correct(*args, **kwargs):
    return _numpy_batch_norm(*args, **kwargs)


def _variances_swapped(*args, **kwargs):
    return _numpy_batch_norm(*args, **kwargs, variance_in_norm=lambda var, unb: unb,
                             running_variance=lambda var, unb: var)


def _eps_outside_sqrt(*args, **kwargs):
    return _numpy_batch_norm(*args, **kwargs, denominator=lambda var, eps: np.sqrt(var) + eps)


def _running_not_updated(*args, **kwargs):
    return _numpy_batch_norm(*args, **kwargs, updated=False)


def _momentum_reversed(*args, **kwargs):
    return _numpy_batch_norm(*args, **kwargs, momentum_weights=lambda m: (m, 1 - m))


def _numpy_grad(dy, x, running_mean, running_var, weight, training=False, eps=1e-5,
                mean_terms=True):
    if training:
        mean, var, n = _statistics64(x)
    else:
        mean, var = (np.asarray(a, dtype=np.float64) for a in (running_mean, running_var))
    axes = (0,) + tuple(range(2, x.ndim))
    invstd = 1.0 / np.sqrt(var + eps)
    d = dy.astype(np.float64)
    xhat = (x - _column(mean, x)) * _column(invstd, x)
    db, dw = d.sum(axis=axes), (d * xhat).sum(axis=axes)
    w = _column(weight, x)
    if training and mean_terms:
        dx = w * _column(invstd, x) / n * (n * d - _column(db, x) - xhat * _column(dw, x))
    else:
        dx = d * w * _column(invstd, x)
    wd = np.asarray(weight).dtype
    return dx.astype(x.dtype), dw.astype(wd), db.astype(wd)


def _grad_without_mean_terms(*args, **kwargs):
    return _numpy_grad(*args, **kwargs, mean_terms=False)


def _training(case):
    return "training=True" in case


PLANTED = [
    ("batch_norm", _variances_swapped, _training),
    ("batch_norm", _eps_outside_sqrt, lambda c: True),
    ("batch_norm", _running_not_updated, _training),
    ("batch_norm", _momentum_reversed, lambda c: _training(c) and "momentum=0.5" not in c),
    ("batch_norm_grad", _grad_without_mean_terms, _training),
]


def _finite_cases(op):
    return [c for c in suite("small", op) if "nonfinite" not in c.id]


@pytest.mark.parametrize("op,fn", [("batch_norm", _correct), ("batch_norm_grad", _numpy_grad)])
def test_the_planted_bugs_base_is_correct(op, fn):
    report = convbench.verify(op, fn, _finite_cases(op))
    assert report.passed and report.counts()["pass"] == len(_finite_cases(op)), str(report)


@pytest.mark.parametrize("op,fn,exposes", PLANTED, ids=[p[1].__name__ for p in PLANTED])
def test_planted_bug_rejected(op, fn, exposes):
    report = convbench.verify(op, fn, _finite_cases(op))
    assert not report.passed
    failed = [r for r in report.rows if r.status != "pass"]
    assert failed and all(r.status == "FAIL" for r in failed), str(report)
    assert all(exposes(r.case) for r in failed), str(report)   # the bug, not the harness
    # most of the exposing cases catch it (float16's tolerance, or |mean|/std ~ 1000, may hide
    # an effect of relative size eps)
    assert len(failed) >= sum(exposes(c.id) for c in _finite_cases(op)) * 3 // 4, str(report)


# ---------------------------------------------------------------------------------------
# Public function and gradient op
# ---------------------------------------------------------------------------------------

def _inputs(shape=(4, 3, 5, 5), dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(2, 3, shape).astype(dtype)
    c = shape[1]
    return (x, rng.normal(size=c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype),
            rng.normal(size=c).astype(dtype), rng.normal(size=c).astype(dtype))


@pytest.mark.parametrize("algorithm", [None, "fused_numba", "batch_norm_torch"])
def test_public_function_updates_running_statistics_in_place(algorithm):
    x, rm, rv, w, b = _inputs()
    trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    expected = F.batch_norm(torch.from_numpy(x), trm, trv, torch.from_numpy(w),
                            torch.from_numpy(b), True, 0.2, 1e-4).numpy()
    y = convbench.batch_norm(x, rm, rv, w, b, True, 0.2, 1e-4, algorithm=algorithm)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-6)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-6)
    # tensors in, tensors out; their running statistics updated too
    tx = torch.from_numpy(x)
    rm2, rv2 = torch.zeros(3), torch.ones(3)
    yt = convbench.batch_norm(tx, rm2, rv2, training=True, algorithm=algorithm)
    ref = F.batch_norm(tx, torch.zeros(3), torch.ones(3), training=True)
    assert isinstance(yt, torch.Tensor)
    np.testing.assert_allclose(yt.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    assert rm2.abs().sum() > 0


def test_public_function_defaults_and_missing_arrays():
    x, rm, rv, w, b = _inputs((6, 3))
    y_eval = convbench.batch_norm(x, rm, rv)          # eval, weight 1, bias 0
    np.testing.assert_allclose(y_eval, (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-5, atol=1e-6)
    y = convbench.batch_norm(x, None, None, training=True)   # nothing to update
    xd = x.astype(np.float64)
    np.testing.assert_allclose(y, (xd - xd.mean(0)) / np.sqrt(xd.var(0) + 1e-5), atol=1e-5)


def test_gradient_op_through_apply():
    x, rm, rv, w, _ = _inputs((3, 2, 4, 4), np.float64)
    dy = np.random.default_rng(1).normal(size=x.shape)
    for training in (True, False):
        dx, dw, db = apply("batch_norm_grad", (dy, x, rm, rv, w), GRAD_NAMES,
                           {"training": training, "eps": 1e-3})
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, np.zeros(2)))
        F.batch_norm(tx, torch.tensor(rm), torch.tensor(rv), tw, tb, training,
                     0.1, 1e-3).backward(torch.tensor(dy))
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-9, atol=1e-12)


X = np.zeros((4, 3, 2), np.float32)
C3 = np.ones(3, np.float32)
API_BAD = [
    ((X, C3, C3), dict(eps=0.0), ValueError, "eps"),
    ((X, C3, C3), dict(eps=-1e-5), ValueError, "eps"),
    ((X, C3, C3), dict(momentum=None, training=True), TypeError, "momentum"),
    ((X, C3, C3), dict(training=1), TypeError, "training"),
    ((X, C3[:2], C3), {}, ValueError, "running_mean"),
    ((X, C3, np.ones(4, np.float32)), {}, ValueError, "running_var"),
    ((X, C3, C3, np.ones((3, 1), np.float32)), {}, ValueError, "weight"),
    ((X, C3, C3, None, C3[:1]), {}, ValueError, "bias"),
    ((np.zeros((1, 3, 1), np.float32), C3, C3), dict(training=True), ValueError,
     "more than 1 value per channel"),
    ((np.zeros((1, 3), np.float32), None, None), dict(training=True), ValueError,
     "more than 1 value per channel"),
    ((np.zeros(3, np.float32), C3, C3), {}, ValueError, "x"),
    ((np.zeros((2, 3, 1, 1, 1, 1), np.float32), C3, C3), {}, ValueError, "x"),
    ((np.zeros((0, 3), np.float32), C3, C3), {}, ValueError, "x"),
    ((X.astype(np.int32), C3, C3), {}, TypeError, "x"),
    ((X, None, C3), {}, ValueError, "running_mean"),
    ((X, [0., 0., 0.], C3), dict(training=True), TypeError, "running_mean"),
]


@pytest.mark.parametrize("args,kwargs,error,name", API_BAD,
                         ids=[f"{b[3]}-{i}" for i, b in enumerate(API_BAD)])
def test_api_bad_input_before_any_work(args, kwargs, error, name, no_work):
    with pytest.raises(error, match=name):
        convbench.batch_norm(*args, **kwargs)


def test_read_only_running_statistics_refused_in_training(no_work):
    rm = np.zeros(3, np.float32)
    rm.flags.writeable = False
    with pytest.raises(ValueError, match="running_mean"):
        convbench.batch_norm(X, rm, C3.copy(), training=True)


def test_gradient_bad_dy_shape():
    with pytest.raises(ValueError, match="dy"):
        apply("batch_norm_grad", (np.zeros((4, 3, 3)), X, C3, C3, C3), GRAD_NAMES, {})


# ---------------------------------------------------------------------------------------
# Workloads (slow: the seed case is 200 MB of float32)
# ---------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("op", OPS)
def test_seed_and_layer_cases_verified(op):
    from convbench.verification import verify_candidates

    cases = suite("seed", op) + suite("layers", op)
    report = verify_candidates(registry.candidates(op), cases)
    assert report.passed and report.counts()["pass"] == 2 * len(cases), str(report)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_float_tensors_within_their_bound(dtype):
    """float16 and bfloat16 tensors through convbench.batch_norm: computed in float32 and
    rounded once, within the op's bound with the half float's final rounding."""
    from convbench.spec import Spec

    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(3, 2, (4, 3, 5, 5)).astype(np.float32)).to(dtype)
    w = torch.from_numpy(rng.normal(size=3).astype(np.float32)).to(dtype)
    b = torch.from_numpy(rng.normal(size=3).astype(np.float32)).to(dtype)
    rm, rv = torch.zeros(3, dtype=dtype), torch.ones(3, dtype=dtype)
    y = convbench.batch_norm(x, rm, rv, w, b, training=True)
    assert y.dtype == dtype and rm.dtype == dtype
    name = str(dtype).replace("torch.", "")
    spec = Spec.make("batch_norm", [tuple(x.shape)] + [(3,)] * 4, [name] * 5, training=True)
    arrays = [a.float().numpy() for a in (x, torch.zeros(3), torch.ones(3), w, b)]
    for got, (ref, scale) in zip((y, rm, rv), spec.operation.reference_outputs(spec, arrays)):
        tol = bound("direct", result_dtype=name, ref=ref, absref=scale, terms=10)
        verdict = compare(got.float().numpy(), ref, tol)
        assert verdict["passed"], verdict


def _adversarial(kind, shape, rng):
    if kind == "offset":        # |mean| / std = 1e6
        return rng.standard_normal(shape) + 1e6
    if kind == "outlier":       # one value 1e5 among standard normals: var ~ 1e10 / M
        a = rng.standard_normal(shape)
        a.flat[0] = 1e5
        return a
    a = rng.standard_normal(shape)    # "halves": the blocks' means differ by 300 std
    a[..., : shape[-1] // 2] += 300
    return a


@pytest.mark.parametrize("kind", ["offset", "outlier", "halves"])
@pytest.mark.parametrize("shape", [(5000, 3), (2, 1, 5000), (3, 2, 40, 70)])
def test_fused_candidate_on_cancelling_data(kind, shape, one_thread):
    """Statistics accumulated in float64 over L1 blocks, regrouped exactly: within the
    op's bound on data that cancels (torch's own float32 (N, C) path misses it on these:
    results/README.md)."""
    from candidates.batch_norm import fused_numba
    from convbench.spec import Spec

    rng = np.random.default_rng(len(shape))
    x = _adversarial(kind, shape, rng).astype(np.float32)
    c = shape[1]
    stats = (rng.normal(size=c), rng.uniform(0.5, 2, c), rng.normal(size=c), rng.normal(size=c))
    stats = tuple(a.astype(np.float32) for a in stats)
    dy = rng.standard_normal(shape).astype(np.float32)
    for op, arrays in (("batch_norm", (x,) + stats), ("batch_norm_grad", (dy, x) + stats[:3])):
        kw = dict(training=True, eps=1e-5, **({"momentum": 0.3} if op == "batch_norm" else {}))
        spec = Spec.make(op, [a.shape for a in arrays], ["float32"] * 5, **kw)
        out = getattr(fused_numba, op)(*arrays, **kw)
        for k, (ref, scale) in enumerate(spec.operation.reference_outputs(spec, arrays)):
            tol = bound("direct", result_dtype="float32", ref=ref, absref=scale, terms=10)
            verdict = compare(out[k], ref, tol, out_dtype="float32")
            assert verdict["passed"], (op, k, verdict["reason"])
