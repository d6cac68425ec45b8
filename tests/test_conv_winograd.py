"""Tests of candidates/conv/winograd_numpy.py and the 'winograd' error model: hand-derived
transforms, agreement with torch.nn.functional.conv2d, the model's bound against torch's
float64 result, planted bugs rejected by convbench.verify, supports() and bad input."""
import functools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import convbench  # noqa: E402
from candidates import runtime  # noqa: E402
from candidates.conv import winograd_numpy as wn  # noqa: E402
from convbench import tolerance  # noqa: E402
from convbench.cases import suite  # noqa: E402
from convbench.dtypes import UNIT_ROUNDOFF  # noqa: E402
from convbench.spec import Spec  # noqa: E402
from refimpl.geometry import layer_padding  # noqa: E402

TORCH_PAD = {"constant": "constant", "edge": "replicate", "reflect": "reflect", "wrap": "circular"}


@pytest.fixture(autouse=True)
def one_thread_and_fresh_cache():
    runtime.set_threads(None)
    wn.clear_cache()
    yield
    runtime.set_threads(None)
    wn.clear_cache()


def padded_torch(x, pads, border, cval):
    """x (float64 torch tensor) extended by torch's F.pad; symmetric (which torch lacks)
    by numpy.pad, whose names are ours."""
    flat = [v for lo, hi in reversed(pads) for v in (lo, hi)]
    fits = all(lo < n and hi < n for n, (lo, hi) in zip(x.shape[2:], pads))
    if border == "constant":
        return F.pad(x, flat, mode="constant", value=cval)
    if border == "edge" or (border in ("reflect", "wrap") and fits):
        return F.pad(x, flat, mode=TORCH_PAD[border])
    return torch.from_numpy(np.pad(x.numpy(), ((0, 0), (0, 0)) + tuple(pads), mode=border))


def torch_reference(x, w, b, padding, border, cval, groups):
    """(torch float64 result, the 'winograd' model's scale |x| (*) W(|w|) + |b|)."""
    pads = layer_padding(x.shape[2:], w.shape[2:], padding)
    t = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))  # noqa: E731
    xp = padded_torch(t(x), pads, border, cval)
    y = F.conv2d(xp, t(w), None if b is None else t(b), groups=groups)
    scale = F.conv2d(padded_torch(t(np.abs(x.astype(np.float64))), pads, border, abs(cval)),
                     t(tolerance.winograd_kernel(w)), None if b is None else t(np.abs(b)),
                     groups=groups)
    return y.numpy(), scale.numpy()


def winograd_tolerance(y_ref, scale, cg, bias, dtype):
    terms = cg + (bias is not None)
    return tolerance.bound("winograd", result_dtype=dtype, ref=y_ref, absref=scale, terms=terms)


# ---------------------------------------------------------------------------------------
# The transforms, by hand
# ---------------------------------------------------------------------------------------

def test_f23_reproduces_two_direct_outputs_by_hand():
    # d = 1 2 3 4, g = 1 2 3: direct y0 = 1+4+9 = 14, y1 = 2+6+12 = 20.
    # G g = (1, (1+2+3)/2, (1-2+3)/2, 3) = (1, 3, 1, 3); B^T d = (1-3, 2+3, 3-2, 2-4)
    # = (-2, 5, 1, -2); product (-2, 15, 1, -6); A^T: (-2+15+1, 15-1+6) = (14, 20)
    d, g = np.array([1., 2., 3., 4.]), np.array([1., 2., 3.])
    np.testing.assert_array_equal(wn.G @ g, [1., 3., 1., 3.])
    np.testing.assert_array_equal(wn.BT @ d, [-2., 5., 1., -2.])
    np.testing.assert_array_equal(wn.AT @ ((wn.G @ g) * (wn.BT @ d)), [14., 20.])
    # the matrices the error model uses are the same
    for ours, model in ((wn.AT, tolerance.WINOGRAD_AT), (wn.G, tolerance.WINOGRAD_G),
                        (wn.BT, tolerance.WINOGRAD_BT)):
        np.testing.assert_array_equal(ours, model)


def test_one_tile_2d_by_hand():
    # x = 0..15 as 4x4, w = ones: each output sums a 3x3 window:
    # rows 0-2 cols 0-2: 0+1+2+4+5+6+8+9+10 = 45, cols 1-3: 54; rows 1-3: 81, 90
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    y = wn.conv(x, np.ones((1, 1, 3, 3)))
    np.testing.assert_array_equal(y, [[[[45., 54.], [81., 90.]]]])
    # a one-hot kernel at tap (r, s) picks x[p + r, q + s]
    for r, s in [(0, 0), (1, 2), (2, 1)]:
        w = np.zeros((1, 1, 3, 3))
        w[0, 0, r, s] = 1.0
        np.testing.assert_array_equal(wn.conv(x, w)[0, 0], x[0, 0, r:r + 2, s:s + 2])


def test_kernel_transform_is_g_w_gt_and_cached_by_value():
    # g = one-hot at (0, 0): G g G^T = outer(G[:, 0], G[:, 0]), G[:, 0] = (1, 1/2, 1/2, 0)
    w = np.zeros((32, 32, 3, 3), np.float32)       # 9216 taps: the cache key samples every 2nd
    w[0, 0, 0, 0] = 1.0
    u = wn.kernel_transform(w, np.float32)
    col0, col1 = np.array([1., .5, .5, 0.]), np.array([0., .5, -.5, 0.])
    np.testing.assert_array_equal(u[:, 0, 0].reshape(4, 4), np.outer(col0, col0))
    assert wn.kernel_transform(w, np.float32) is u and wn.cache_info()["hits"] == 1
    # changed in place at flat index 1, which the key's sample skips: the bitwise
    # comparison with the kept copy still sees it
    w[0, 0, 0, 1] = 2.0
    u2 = wn.kernel_transform(w, np.float32)
    np.testing.assert_array_equal(u2[:, 0, 0].reshape(4, 4),
                                  np.outer(col0, col0) + 2 * np.outer(col0, col1))
    assert wn.cache_info()["hits"] == 1 and wn.cache_info()["misses"] == 2


# ---------------------------------------------------------------------------------------
# Agreement with torch, within the model's bound
# ---------------------------------------------------------------------------------------

# (n, c, o, (h, w), groups, padding, border, dtype, bias)
TORCH_CASES = {
    "pad1-f32-bias": (2, 8, 6, (9, 10), 1, 1, "constant", "float32", True),
    "odd-sizes-valid": (1, 3, 4, (7, 5), 1, 0, "constant", "float64", False),
    "same-f64": (1, 4, 5, (6, 9), 1, "same", "edge", "float64", True),
    "sides-reflect": (1, 2, 3, (5, 6), 1, ((2, 1), (0, 3)), "reflect", "float32", False),
    "wide-symmetric": (1, 2, 2, (3, 2), 1, 4, "symmetric", "float64", True),
    "wrap-groups2": (2, 4, 6, (8, 7), 2, 1, "wrap", "float32", True),
    "depthwise": (1, 3, 6, (10, 11), 3, 1, "constant", "float32", False),
    "f16-cval": (1, 3, 4, (8, 8), 1, 2, "constant", "float16", True),
    "one-output": (1, 2, 2, (1, 1), 1, 1, "edge", "float32", False),
    "many-channels": (1, 96, 40, (13, 12), 1, 1, "constant", "float32", True),
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", TORCH_CASES.values(), ids=TORCH_CASES.keys())
def test_matches_torch_within_the_winograd_bound(case, threads):
    n, c, o, spatial, groups, padding, border, dtype, bias = case
    runtime.set_threads(threads)
    rng = np.random.default_rng(sum(spatial) * 7 + c)
    x = rng.standard_normal((n, c) + spatial).astype(dtype)
    w = rng.standard_normal((o, c // groups, 3, 3)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else None
    y = wn.conv(x, w, b, padding=padding, groups=groups, border=border, cval=0.75)
    y_ref, scale = torch_reference(x, w, b, padding, border, 0.75, groups)
    assert y.shape == y_ref.shape and y.dtype == np.dtype(dtype)
    tol = winograd_tolerance(y_ref, scale, c // groups, b, dtype)
    err = np.abs(y.astype(np.float64) - y_ref)
    assert (err <= tol).all(), (err / tol).max()


def test_every_parallel_path_agrees():
    """Whole images per chunk, tile-row chunks, and the phase split by output channels
    (forced by small chunk budgets) give results within the bound, with 1 to 3 threads."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 24, 17, 15)).astype(np.float32)
    w = rng.standard_normal((32, 12, 3, 3)).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    y_ref, scale = torch_reference(x, w, b, 1, "reflect", 0.0, 2)
    tol = winograd_tolerance(y_ref, scale, 12, b, "float32")
    saved = wn.CHUNK_BYTES, wn.PARALLEL_MIN_FLOPS, wn.BLOCK
    try:
        wn.PARALLEL_MIN_FLOPS = 0
        for chunk_bytes, block in [(1 << 12, 40), (1 << 16, 1 << 14), (16 << 20, 1 << 14)]:
            wn.CHUNK_BYTES, wn.BLOCK = chunk_bytes, block
            for threads in (1, 2, 3):
                runtime.set_threads(threads)
                for batch in (slice(0, 1), slice(None)):
                    y = wn.conv(x[batch], w, b, padding=1, groups=2, border="reflect")
                    err = np.abs(y - y_ref[batch])
                    assert (err <= tol[batch]).all(), (chunk_bytes, threads, batch)
    finally:
        wn.CHUNK_BYTES, wn.PARALLEL_MIN_FLOPS, wn.BLOCK = saved


def test_bound_holds_with_cancellation_and_a_wide_dynamic_range():
    # inputs of magnitudes 1e-3 .. 1e3 and kernels whose taps nearly cancel: the Winograd
    # error is largest relative to the result; it must stay within the model's bound
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((1, 16, 20, 20)) * 10.0 ** rng.integers(-3, 4, (1, 16, 20, 20)))
    x = x.astype(np.float32)
    w = np.ones((8, 16, 3, 3), np.float32) + rng.standard_normal((8, 16, 3, 3)).astype(
        np.float32) * 1e-3
    w[:, :, 1, 1] = -8.0
    y = wn.conv(x, w, padding=1)
    y_ref, scale = torch_reference(x, w, None, 1, "constant", 0.0, 1)
    tol = winograd_tolerance(y_ref, scale, 16, None, "float32")
    err = np.abs(y - y_ref)
    assert (err <= tol).all(), (err / tol).max()
    # ... and the error is really there: more than the direct sum's rounding of |y|
    assert (err / tol).max() > 1e-4


def test_nonfinite_values_land_where_the_direct_sum_puts_them():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, 9, 8)).astype(np.float32)
    x[0, 0, 4, 4], x[0, 1, 0, 7] = np.nan, np.inf
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    y = wn.conv(x, w, padding=1)
    y_ref, _ = torch_reference(x, w, None, 1, "constant", 0.0, 1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y_ref))
    np.testing.assert_array_equal(np.isposinf(y), np.isposinf(y_ref))
    np.testing.assert_array_equal(np.isneginf(y), np.isneginf(y_ref))
    finite = np.isfinite(y_ref)
    np.testing.assert_allclose(y[finite], y_ref[finite], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------
# The error model
# ---------------------------------------------------------------------------------------

def test_model_windows_and_effective_kernel_by_hand():
    # E_0[t, r] = sum_k |A^T_0k| |B^T_k,t| |G_kr|: t = 0 only k = 0 (G row 1 0 0); t = 1
    # k = 1, 2 (1/2 each, twice); t = 2 k = 0, 1, 2. E_1 likewise over k = 1, 2, 3.
    e = tolerance.winograd_windows()
    np.testing.assert_array_equal(e[0], [[1, 0, 0], [1, 1, 1], [2, 1, 1]])
    np.testing.assert_array_equal(e[1], [[1, 1, 2], [1, 1, 1], [0, 0, 1]])
    # w = ones: E_i 1 E_j^T = outer(row sums); max over phases of the row sums (1,3,4) and
    # (4,3,1) is (4,3,4): W = outer((4,3,4), (4,3,4))
    np.testing.assert_array_equal(tolerance.winograd_kernel(np.ones((3, 3))),
                                  np.outer([4, 3, 4], [4, 3, 4]))
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 3, 3, 3))
    big = tolerance.winograd_kernel(w)
    assert (big >= np.abs(w)).all()                         # covers the direct sum
    assert (big.sum((-2, -1)) <= 16 * np.abs(w).sum((-2, -1)) + 1e-12).all()   # beta = 16


def test_model_refuses_f43():
    at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    g = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
    bt = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
          [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    # F(4,3) is exact (a 1-D check) but its absolute values reach outside the window
    d, w = np.arange(1., 7.), np.array([1., -2., 3.])
    np.testing.assert_allclose(np.array(at) @ ((np.array(g) @ w) * (np.array(bt) @ d)),
                               [d[i:i + 3] @ w for i in range(4)], atol=1e-12)
    with pytest.raises(ValueError, match="outside"):
        tolerance.winograd_windows(at, bt, g)


def test_model_tolerance_against_direct():
    # float32, C/groups = 64, no bias: gamma_{74} against gamma_{576}; scale 121/9 larger
    # for a flat kernel: the winograd tolerance is 121/9 * 74/576 = 1.73x the direct one
    ref, absref = np.array([1.0]), np.array([9.0])
    direct = tolerance.bound("direct", result_dtype="float32", ref=ref, absref=absref,
                             terms=576)
    wino = tolerance.bound("winograd", result_dtype="float32", ref=ref, absref=absref * 121 / 9,
                           terms=64)
    np.testing.assert_allclose(wino / direct, 121 / 9 * 74 / 576, rtol=1e-4)   # 1/(1-nu)
    u = UNIT_ROUNDOFF["float32"]
    np.testing.assert_allclose(wino, 74 * u / (1 - 74 * u) * 121, rtol=1e-12)


# ---------------------------------------------------------------------------------------
# Verification through the harness; planted bugs are rejected
# ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def winograd_cases():
    """The small conv cases Winograd takes (finite values: its transforms spread NaN/Inf
    over a tile, so it does not declare NONFINITE)."""
    spec_ok = lambda c: wn.supports(c.spec) is None and not c.nonfinite  # noqa: E731
    return [c for c in suite("small", "conv") if spec_ok(c)]


def test_passes_small_and_quick_cases_under_its_model():
    cases = winograd_cases() + suite("quick", "conv")
    report = convbench.verify("conv", wn.conv, cases, error="winograd")
    assert report.passed and all(r.status == "pass" for r in report.rows), str(report)
    assert len(report.rows) >= 20
    assert {r.error_model for r in report.rows} == {"winograd"}


def reference_winograd(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                       border="constant", cval=0.0, g_matrix=None, step=2):
    """A plain Winograd F(2x2,3x3) written independently of the candidate (tiles gathered
    by as_strided, einsum transforms, float64), with knobs for planted bugs."""
    g_matrix = tolerance.WINOGRAD_G if g_matrix is None else g_matrix
    bt, at = tolerance.WINOGRAD_BT, tolerance.WINOGRAD_AT
    pads = layer_padding(x.shape[2:], (3, 3), padding)
    width = ((0, 0), (0, 0)) + tuple(pads)
    xd = np.asarray(x, dtype=np.float64)
    xp = np.pad(xd, width, mode="constant", constant_values=cval) if border == "constant" \
        else np.pad(xd, width, mode=border)
    p, q = xp.shape[2] - 2, xp.shape[3] - 2
    th, tw = -(-p // 2), -(-q // 2)
    need_h, need_w = (th - 1) * step + 4, (tw - 1) * step + 4
    xp = np.pad(xp, ((0, 0), (0, 0), (0, max(0, need_h - xp.shape[2])),
                     (0, max(0, need_w - xp.shape[3]))))
    s = xp.strides
    tiles = np.lib.stride_tricks.as_strided(
        xp, xp.shape[:2] + (th, tw, 4, 4), s[:2] + (s[2] * step, s[3] * step, s[2], s[3]))
    v = np.einsum("ka,ncxyab,lb->klncxy", bt, tiles, bt)
    u = np.einsum("kr,ocrs,ls->kloc", g_matrix, np.asarray(w, np.float64), g_matrix)
    cg, og = w.shape[1], w.shape[0] // groups
    m = np.concatenate([np.einsum("kloc,klncxy->klnoxy", u[:, :, i * og:(i + 1) * og],
                                  v[:, :, :, i * cg:(i + 1) * cg]) for i in range(groups)], 3)
    y = np.einsum("ik,klnoxy,jl->noxiyj", at, m, at).reshape(x.shape[0], w.shape[0],
                                                            2 * th, 2 * tw)[:, :, :p, :q]
    if bias is not None:
        y = y + np.asarray(bias, np.float64).reshape(1, -1, 1, 1)
    return y.astype(np.result_type(*[a for a in (x, w, bias) if a is not None]))


WRONG_G = tolerance.WINOGRAD_G.copy()
WRONG_G[1] = [0.5, 0.5, -0.5]
SWAPPED = {"reflect": "symmetric", "symmetric": "reflect", "edge": "wrap", "wrap": "edge",
           "constant": "constant"}


def bug_u_in_float16(x, w, bias=None, **kw):
    """The kernel transform stored in float16 (a relative error ~5e-4 on every U)."""
    return wn.conv(x, w.astype(np.float16).astype(w.dtype), bias, **kw)


PLANTED = {
    "wrong-G-row": (functools.partial(reference_winograd, g_matrix=WRONG_G), lambda c: True),
    "tile-stride-off-by-one": (functools.partial(reference_winograd, step=3), lambda c: True),
    "bias-dropped": (lambda x, w, bias=None, **kw: wn.conv(x, w, None, **kw),
                     lambda c: len(c.spec.shapes) == 3),
    "wrong-border": (lambda x, w, bias=None, border="constant", **kw:
                     wn.conv(x, w, bias, border=SWAPPED[border], **kw),
                     lambda c: c.spec.kwargs["border"] != "constant"),
    "cval-ignored": (lambda x, w, bias=None, cval=0.0, **kw: wn.conv(x, w, bias, **kw),
                     lambda c: c.spec.kwargs["cval"] != 0),
    "kernel-rounded-to-float16": (bug_u_in_float16,
                                  lambda c: c.spec.dtypes[1] in ("float32", "float64")),
}


def test_reference_winograd_passes():
    """The independent Winograd used to plant bugs is right when nothing is planted."""
    report = convbench.verify("conv", reference_winograd, winograd_cases(), error="winograd")
    assert report.passed and all(r.status == "pass" for r in report.rows), str(report)


@pytest.mark.parametrize("bug, relevant", PLANTED.values(), ids=PLANTED.keys())
def test_planted_bug_is_rejected(bug, relevant):
    cases = [c for c in winograd_cases() if relevant(c)][:8]
    assert cases
    report = convbench.verify("conv", bug, cases, error="winograd")
    assert not report.passed
    wrong = [r for r in report.rows if r.status == "FAIL" and "bound" in r.detail]
    assert wrong, str(report)


def test_wrong_g_row_in_the_candidate_is_rejected(monkeypatch):
    monkeypatch.setattr(wn, "G", WRONG_G)
    wn.clear_cache()
    report = convbench.verify("conv", wn.conv, winograd_cases()[:4], error="winograd")
    assert not report.passed and any(r.status == "FAIL" for r in report.rows), str(report)


def test_model_is_refused_outside_its_layers():
    def torch_conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                   border="constant", cval=0.0):
        return F.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=stride,
                        padding=padding, dilation=dilation, groups=groups).numpy()

    case = [c for c in suite("small", "conv") if c.spec.shapes[1][2:] == (3, 2)][0]
    report = convbench.verify("conv", torch_conv, [case], error="winograd")
    assert report.rows[0].status == "error" and "'winograd' model" in report.rows[0].detail


# ---------------------------------------------------------------------------------------
# supports() and bad input
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("shapes, kwargs, dtype, match", [
    ([(1, 2, 8), (2, 2, 3)], {}, "float32", "1 spatial axis"),
    ([(1, 2, 5, 5, 5), (2, 2, 3, 3, 3)], {}, "float32", "3 spatial axes"),
    ([(1, 2, 8, 8), (2, 2, 5, 5)], {}, "float32", "3x3 kernel, got 5x5"),
    ([(1, 2, 8, 8), (2, 2, 3, 1)], {}, "float32", "3x3 kernel, got 3x1"),
    ([(1, 2, 8, 8), (2, 2, 3, 3)], dict(stride=(1, 2)), "float32", "stride 1"),
    ([(1, 2, 8, 8), (2, 2, 3, 3)], dict(dilation=2), "float32", "dilation 1"),
])
def test_supports_says_why_not(shapes, kwargs, dtype, match):
    spec = Spec.make("conv", shapes, [dtype] * 2, **kwargs)
    reason = wn.supports(spec)
    assert reason and match in reason


def test_supports_what_it_computes():
    for shapes, kwargs in [([(1, 2, 8, 8), (2, 2, 3, 3), (2,)], dict(padding="same")),
                           ([(2, 4, 5, 6), (4, 1, 3, 3)], dict(groups=4, border="wrap")),
                           ([(1, 1, 1, 1), (1, 1, 3, 3)], dict(padding=4, border="reflect"))]:
        assert wn.supports(Spec.make("conv", shapes, ["float16"] * len(shapes), **kwargs)) is None
    spec = Spec.make("conv_grad_input", [(1, 2, 6, 6), (2, 2, 3, 3)], ["float32"] * 2,
                     input_shape=(1, 2, 8, 8))
    assert "conv only" in wn.supports(spec)


X, W = np.ones((1, 4, 6, 6), np.float32), np.ones((6, 4, 3, 3), np.float32)


@pytest.mark.parametrize("call, error, match", [
    (lambda: wn.conv(X, np.ones((6, 4, 5, 5), np.float32)), ValueError, "3x3 kernel"),
    (lambda: wn.conv(X, W, stride=2), ValueError, "stride"),
    (lambda: wn.conv(X, W, dilation=(1, 2)), ValueError, "dilation"),
    (lambda: wn.conv(X[0], W[0]), ValueError, "4-D"),
    (lambda: wn.conv(X.astype(np.int32), W), TypeError, "x has dtype int32"),
    (lambda: wn.conv(X, W.astype(np.complex64)), TypeError, "w has dtype complex64"),
    (lambda: wn.conv(X, np.ones((6, 3, 3, 3), np.float32)), ValueError, r"w.shape\[1\]"),
    (lambda: wn.conv(X, W, groups=3), ValueError, "groups=3"),
    (lambda: wn.conv(X, W, np.ones(5, np.float32)), ValueError, "bias must have shape"),
    (lambda: wn.conv(X[:, :, :0], W), ValueError, "x must not be empty"),
    (lambda: wn.conv(X, W, border="mirror101"), ValueError, "unknown border"),
    (lambda: wn.conv(X[:, :, :1, :1], W), ValueError, "larger than the padded input"),
    (lambda: wn.conv(X.tolist(), W), TypeError, "x must be a numpy array"),
])
def test_bad_input_is_refused_before_any_work(call, error, match):
    with pytest.raises(error, match=match):
        call()
    assert wn.cache_info()["misses"] == 0          # nothing transformed
