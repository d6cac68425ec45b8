"""Tests of the fast image-form candidates of issue 4: candidates/correlate/separable_numpy.py
(rank test, factors, certificate, plans) and candidates/correlate/direct_numba.py (exact
integer path, saturation, borders, threads), each verified on the small suite, and planted
separable bugs rejected by convbench.verify.

References are independent of the code under test: the float64 oracle (refimpl), scipy.ndimage
in float64, or a float64 numpy shift-add written here; kernel ranks are derived by hand."""
import numpy as np
import pytest

import convbench
from convbench import registry, tolerance, values
from convbench.cases import suite
from convbench.cases.correlate import BORDERS, image_case
from convbench.data import NAMED_KERNELS, gaussian_kernel, photo, photos_available
from convbench.verification import verify_candidates
from refimpl import correlate as ref
from refimpl.dtypes import image_compute_dtype, result_dtype, round_saturate
from refimpl.geometry import image_padding
from refimpl.pad import LIBRARY_NAMES, source_index

from candidates.correlate import separable_numpy as sep

ndi = pytest.importorskip("scipy.ndimage")

U32 = 2.0**-24


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """Single-threaded unless a test says otherwise: values, not speed, are tested here."""
    from candidates import runtime

    monkeypatch.setattr(runtime, "_threads", 1)


def camera():
    """skimage's 512 x 512 uint8 camera photo (flat regions, saturated edges)."""
    reason = photos_available()
    if reason:
        pytest.skip(reason)
    return photo("camera")


def numba_module():
    pytest.importorskip("numba")
    from candidates.correlate import direct_numba

    return direct_numba


def within_bound(y, x, w, op="correlate", **kwargs):
    """(passed, reason): ``y`` against the float64 oracle under the 'direct' bound of
    convbench.tolerance (the one the verifier uses)."""
    out_dtype = kwargs.pop("out_dtype", None)
    oracle = ref.correlate if op == "correlate" else ref.convolve
    expected = oracle(x, w, **kwargs)
    abs_kwargs = dict(kwargs, cval=abs(kwargs.get("cval", 0.0)))
    with np.errstate(invalid="ignore"):
        absref = oracle(np.abs(np.nan_to_num(x.astype(np.float64), posinf=0, neginf=0)),
                        np.abs(w.astype(np.float64)), **abs_kwargs)
    floating = result_dtype(x.dtype, w.dtype)
    tol = tolerance.bound("direct", result_dtype=floating, ref=expected, absref=absref, terms=w.size)
    verdict = tolerance.compare(np.asarray(y), expected, tol,
                                out_dtype=np.dtype(out_dtype) if out_dtype else floating)
    return verdict["passed"], verdict["reason"]


def shift_add64(x, w, border="constant", cval=0.0):
    """Float64 numpy reference for 2-D 'same' correlation (anchor k//2)."""
    pads = image_padding(w.shape)
    kwargs = {"constant_values": cval} if border == "constant" else {}
    xp = np.pad(x.astype(np.float64), pads, mode=border, **kwargs)
    y = np.zeros(x.shape)
    for (i, j), c in np.ndenumerate(w.astype(np.float64)):
        y += c * xp[i:i + x.shape[0], j:j + x.shape[1]]
    return y


# ---------------------------------------------------------------------------------------
# Both candidates pass the small suite (correlate and convolve)
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["correlate", "convolve"])
@pytest.mark.parametrize("name", ["separable_numpy", "direct_numba", "separable_numba"])
def test_small_suite(op, name):
    candidate = registry.get(op, name)
    if candidate.unavailable():
        pytest.skip(candidate.unavailable())
    report = verify_candidates([candidate], suite("small", op))
    assert report.passed, str(report)
    for row in report.rows:
        assert row.status == "pass" or (row.status == "unsupported" and row.detail), row
    if name in ("separable_numpy", "separable_numba"):
        # every real-dtype case of the suite but NaN/Inf values and exact integer sums,
        # which factors cannot reproduce
        assert all(case.nonfinite or values.exact_integer(case.spec)
                   for case in suite("small", op)
                   if any(r.case == case.id and r.status != "pass" for r in report.rows))


# ---------------------------------------------------------------------------------------
# separable_numpy: rank, factors, certificate, plans
# ---------------------------------------------------------------------------------------

def k32(a):
    return np.asarray(a, dtype=np.float32)


@pytest.mark.parametrize("name, kernel", [
    ("gauss 7x7 sigma 1", k32(gaussian_kernel((7, 7), 1.0))),
    ("gauss 31x31 sigma 5", k32(gaussian_kernel((31, 31), 5.0))),
    ("gauss 63x63 sigma 20", k32(gaussian_kernel((63, 63), 20.0))),
    ("gauss 5x9 float64", gaussian_kernel((5, 9), 2.0)),
    ("box 3x3", k32(np.full((3, 3), 1 / 9))),
    ("box 15x15", k32(np.full((15, 15), 1 / 225))),
    ("sobel", k32(NAMED_KERNELS["sobel"])),          # [1, 2, 1]^T [1, 0, -1]
])
def test_rank_one_kernels_are_detected_and_certified(name, kernel):
    compute = image_compute_dtype(np.float32, kernel.dtype)
    rank, s = sep.numerical_rank(kernel, compute)
    assert rank == 1, (name, s[:3])
    plan = sep.make_plan(kernel, compute)
    assert (plan.kind, plan.rank) == ("separable", 1)
    assert 0 <= plan.ratio <= 1
    (u, v), = plan.terms
    # the factors rebuild every tap to a few roundings of the compute dtype, zeros exactly
    rebuilt = np.outer(u.astype(np.float64), v.astype(np.float64))
    w = kernel.astype(np.float64)
    eps = 8 * np.finfo(compute).eps
    assert np.all(np.abs(rebuilt - w) <= eps * np.abs(w)), name
    assert np.array_equal(rebuilt == 0, w == 0)


def test_separable_rank_helper_for_the_default_choice():
    assert sep.separable_rank(k32(gaussian_kernel((31, 31), 5.0))) == 1
    assert sep.separable_rank(k32(NAMED_KERNELS["sobel"]), np.uint8) == 1
    assert sep.separable_rank(np.random.default_rng(0).standard_normal((9, 9))) is None


@pytest.mark.parametrize("kernel, rank", [
    (NAMED_KERNELS["sharpen"], 2),   # rows (0,-1,0), (-1,5,-1), (0,-1,0): two distinct
    (NAMED_KERNELS["edge"], 2),      # rows (0,1,0), (1,-4,1), (0,1,0)
    (NAMED_KERNELS["emboss"], 3),    # det = -2(2-1) + 1(-2) = -4 != 0
    (NAMED_KERNELS["identity"], 1),
])
def test_rank_of_named_kernels_derived_by_hand(kernel, rank):
    assert sep.numerical_rank(k32(kernel), np.float32)[0] == rank


def test_random_kernel_is_not_separable_and_falls_back_to_the_direct_sum():
    rng = np.random.default_rng(7)
    w = rng.standard_normal((9, 9)).astype(np.float32)
    assert sep.numerical_rank(w, np.float32)[0] == 9
    assert sep.make_plan(w, np.float32).kind == "direct"
    x = rng.standard_normal((17, 19)).astype(np.float32)
    for border in BORDERS:
        ok, why = within_bound(sep.correlate(x, w, border=border, cval=0.5), x, w,
                               border=border, cval=0.5)
        assert ok, (border, why)


def test_rank_two_kernel_runs_as_two_separable_terms():
    rng = np.random.default_rng(11)
    a, b, c, d = (rng.uniform(0.5, 1.5, 11) for _ in range(4))
    w = (np.outer(a, b) + np.outer(c, d)).astype(np.float32)   # positive: no cancellation
    assert sep.numerical_rank(w, np.float32)[0] == 2
    plan = sep.make_plan(w, np.float32)
    assert (plan.kind, plan.rank, len(plan.terms)) == ("separable", 2, 2)
    x = rng.standard_normal((24, 21)).astype(np.float32)
    for border in BORDERS:
        ok, why = within_bound(sep.correlate(x, w, border=border), x, w, border=border)
        assert ok, (border, why)
    ok, why = within_bound(sep.correlate(x, w, padding="full"), x, w, padding="full")
    assert ok, why


def test_rank_two_kernel_with_cancellation_is_not_certified():
    # w = a b^T - c d^T with mixed signs: some taps are much smaller than the terms that
    # make them, so the two-term rounding error is not covered by gamma_K |w_t|
    rng = np.random.default_rng(5)
    a, b, c, d = (rng.standard_normal(7) for _ in range(4))
    w = (np.outer(a, b) + np.outer(c, d)).astype(np.float32)
    terms = [[u, v] for u, v in sep.cross_factors(w, 2)]
    assert sep.certificate(w, terms, np.float32) > 1
    assert sep.make_plan(w, np.float32).kind == "direct"


def perturbed_rank_one(delta, k=7, seed=2):
    """A float32 outer product with every tap moved by delta relative, random signs."""
    rng = np.random.default_rng(seed)
    w = np.outer(rng.uniform(0.2, 1.0, k), rng.uniform(0.2, 1.0, k))
    return (w * (1 + delta * rng.choice([-1.0, 1.0], size=w.shape))).astype(np.float32)


def test_perturbation_below_the_threshold_is_dropped_and_still_passes():
    w = perturbed_rank_one(2 * U32)
    rank, s = sep.numerical_rank(w, np.float32)
    assert rank == 1 and s[1] > 0                      # not exactly rank 1 ...
    plan = sep.make_plan(w, np.float32)
    assert (plan.kind, plan.rank) == ("separable", 1)  # ... but treated as rank 1
    rng = np.random.default_rng(3)
    for x in (rng.standard_normal((20, 23)).astype(np.float32),
              np.abs(rng.standard_normal((20, 23))).astype(np.float32)):
        for border in ("constant", "symmetric", "wrap"):
            ok, why = within_bound(sep.correlate(x, w, border=border), x, w, border=border)
            assert ok, (border, why)


def test_perturbation_above_the_threshold_is_kept(monkeypatch):
    w = perturbed_rank_one(1e-3)
    rank, s = sep.numerical_rank(w, np.float32)
    assert rank > 1 and s[1] > sep.rank_threshold(w, np.float32)
    plan = sep.make_plan(w, np.float32)
    assert not (plan.kind == "separable" and plan.rank == 1)
    x = np.random.default_rng(4).standard_normal((20, 23)).astype(np.float32)
    ok, why = within_bound(sep.correlate(x, w), x, w)
    assert ok, why
    # the threshold matters: forcing the rank-1 plan on this kernel breaks the bound
    u, v = sep.cross_factors(w, 1)[0]
    forced = sep.Plan("separable", (0, 1), 1, [[u.astype(np.float32), v.astype(np.float32)]])
    monkeypatch.setattr(sep, "plan_for", lambda *args, **kwargs: forced)
    ok, why = within_bound(sep.correlate(x, w), x, w)
    assert not ok and "bound" in why


def test_threshold_never_rejects_what_the_bound_allows():
    # Eckart-Young: if |w - w1| <= gamma_K |w| tap by tap with w1 of rank 1, then
    # s_2(w) <= ||w - w1||_F <= gamma_K ||w||_F = rank_threshold: such a kernel is rank 1
    rng = np.random.default_rng(9)
    for trial in range(20):
        kh, kw = rng.integers(2, 12, size=2)
        w1 = np.outer(rng.standard_normal(kh), rng.standard_normal(kw))
        for compute in (np.float32, np.float64):
            g = sep.gamma(w1.size, sep.unit_roundoff(compute))
            w = w1 + 0.999 * g * np.abs(w1) * rng.choice([-1.0, 1.0], size=w1.shape)
            s = np.linalg.svd(w, compute_uv=False)
            assert s[1] <= sep.rank_threshold(w, compute), (trial, compute)
            assert sep.numerical_rank(w, compute)[0] == 1


def test_plan_cache_is_keyed_by_kernel_values():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 21)).astype(np.float32)
    w = k32(gaussian_kernel((5, 5), 1.0))
    ok, why = within_bound(sep.correlate(x, w), x, w)
    assert ok, why
    assert sep.plan_for(w, np.float32).rank == 1
    w[2, 2] += 0.5              # same array, changed in place: rank 2 now
    assert sep.plan_for(w, np.float32).rank == 2
    ok, why = within_bound(sep.correlate(x, w), x, w)
    assert ok, why


@pytest.mark.parametrize("name", ["separable_numpy", "direct_numba"])
def test_zero_taps_and_nonfinite_images_keep_the_oracle_nan_placement(name):
    # Sobel's middle column is 0: 0 * inf is NaN in the oracle at outputs whose window
    # puts the Inf under a zero tap; banded products would spread NaN further
    fn = sep.correlate if name == "separable_numpy" else numba_module().correlate
    x = np.random.default_rng(2).standard_normal((12, 13)).astype(np.float32)
    x[4, 6], x[8, 2], x[1, 11] = np.inf, np.nan, -np.inf
    w = k32(NAMED_KERNELS["sobel"])
    for border in ("constant", "wrap"):
        with np.errstate(invalid="ignore"):
            ok, why = within_bound(fn(x, w, border=border), x, w, border=border)
        assert ok, (border, why)


def test_three_dimensional_outer_product_is_separable():
    rng = np.random.default_rng(6)
    w = np.multiply.outer(np.multiply.outer(rng.uniform(0.5, 1, 3), rng.uniform(0.5, 1, 4)),
                          rng.uniform(0.5, 1, 5)).astype(np.float32)
    assert sep.numerical_rank(w, np.float32)[0] == 1
    plan = sep.make_plan(w, np.float32)
    assert (plan.kind, plan.rank, len(plan.terms[0])) == ("separable", 1, 3)
    x = rng.standard_normal((7, 9, 8)).astype(np.float32)
    for border in ("constant", "reflect"):
        ok, why = within_bound(sep.correlate(x, w, border=border), x, w, border=border)
        assert ok, (border, why)


@pytest.mark.parametrize("name", ["separable_numpy", "direct_numba"])
def test_two_threads_give_correct_results(monkeypatch, name):
    from candidates import runtime

    fn = sep.correlate if name == "separable_numpy" else numba_module().correlate
    monkeypatch.setattr(runtime, "_threads", 2)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((400, 390)).astype(np.float32)
    for w in (k32(gaussian_kernel((9, 9), 2.0)), rng.standard_normal((5, 5)).astype(np.float32)):
        y = fn(x, w, border="reflect")
        expected = ndi.correlate(x.astype(np.float64), w.astype(np.float64), mode="mirror")
        absref = ndi.correlate(np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)),
                               mode="mirror")
        tol = tolerance.bound("direct", result_dtype=np.float32, ref=expected, absref=absref,
                              terms=w.size)
        assert tolerance.compare(y, expected, tol)["passed"]
        monkeypatch.setattr(runtime, "_threads", 1)
        single = fn(x, w, border="reflect")
        monkeypatch.setattr(runtime, "_threads", 2)
        if name == "direct_numba":   # same order per output whatever the thread count
            np.testing.assert_array_equal(y, single)


# ---------------------------------------------------------------------------------------
# direct_numba
# ---------------------------------------------------------------------------------------

INTEGER_KERNELS = ["sharpen", "edge", "emboss", "sobel"]


@pytest.mark.parametrize("kernel", INTEGER_KERNELS + ["ones"])
def test_numba_uint8_photo_with_integer_kernel_is_exact(kernel):
    dn = numba_module()
    x = camera()                                          # 512 x 512 uint8, real edges
    w = k32(np.ones((3, 3)) if kernel == "ones" else NAMED_KERNELS[kernel])
    assert dn.exact_form(w, x.dtype) is not None
    for border in ("edge", "wrap"):
        y = dn.correlate(x, w, border=border)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(y, shift_add64(x, w, border))   # integers < 2**24


def test_numba_box_and_binomial_kernels_use_the_exact_path():
    dn = numba_module()
    box = k32(np.full((3, 3), 1 / 9))
    c, n, acc = dn.exact_form(box, np.uint8)
    assert c == np.float32(1 / 9) and np.all(n == 1) and acc == np.int32
    binomial = k32(np.outer([1, 2, 1], [1, 2, 1]) / 16)
    c, n, _ = dn.exact_form(binomial, np.uint8)
    assert c == 1 / 16 and np.array_equal(n, np.outer([1, 2, 1], [1, 2, 1]))
    assert dn.exact_form(k32(gaussian_kernel((5, 5), 1.0)), np.uint8) is None
    assert dn.exact_form(box, np.float32) is None                   # floats: float path
    assert dn.exact_form(k32([[1.0, 40000.0]]), np.uint16)[2] == np.int64   # 65535 * 40001
    assert dn.exact_form(box, np.uint8, cval=0.5) is None           # cval not an integer
    x = camera()[:100, :90]
    y = dn.correlate(x, box, border="symmetric", out_dtype="uint8")
    expected = round_saturate(shift_add64(x, np.ones((3, 3)), "symmetric") * np.float64(box[0, 0]),
                              "uint8")
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("out_dtype", ["uint8", "int16", "uint16"])
def test_numba_out_dtype_rounds_and_saturates(out_dtype):
    dn = numba_module()
    x = camera()
    w = k32(NAMED_KERNELS["sharpen"])                    # 5 x - 4 neighbours: -1020 .. 1275
    y = dn.correlate(x, w, border="reflect", out_dtype=out_dtype)
    exact = shift_add64(x, w, "reflect")
    info = np.iinfo(out_dtype)
    assert y.dtype == np.dtype(out_dtype)
    np.testing.assert_array_equal(y, np.clip(exact, info.min, info.max).astype(out_dtype))
    if out_dtype == "uint8":                             # saturation really happens here
        assert (exact < 0).any() and (exact > 255).any()
        assert (y == 0).sum() >= (exact <= 0).sum() and (y == 255).sum() >= (exact >= 255).sum()
    # a float kernel on uint8: rounded half to even from the float32 sum
    g = k32(gaussian_kernel((5, 5), 1.0))
    yg = dn.correlate(x, g, border="edge", out_dtype="uint8")
    ref_g = ndi.correlate(x.astype(np.float64), g.astype(np.float64), mode="nearest")
    assert np.abs(yg.astype(int) - np.rint(ref_g)).max() <= 1
    assert (yg.astype(int) == np.rint(ref_g)).mean() > 0.999


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("border", BORDERS)
def test_numba_float_images_every_border_against_scipy(dtype, border):
    dn = numba_module()
    rng = np.random.default_rng(12)
    x = rng.standard_normal((37, 41)).astype(dtype)
    for w in (rng.standard_normal((5, 4)).astype(dtype), rng.standard_normal((3, 7)).astype(dtype)):
        y = dn.correlate(x, w, border=border, cval=1.25)
        assert y.dtype == dtype
        mode = LIBRARY_NAMES["scipy.ndimage"][border]
        expected = ndi.correlate(x.astype(np.float64), w.astype(np.float64), mode=mode, cval=1.25)
        absref = ndi.correlate(np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)),
                               mode=mode, cval=1.25)
        tol = tolerance.bound("direct", result_dtype=dtype, ref=expected, absref=absref,
                              terms=w.size)
        verdict = tolerance.compare(y, expected, tol, out_dtype=dtype)
        assert verdict["passed"], verdict["reason"]


@pytest.mark.parametrize("border", BORDERS)
def test_numba_strided_input(border):
    dn = numba_module()
    rng = np.random.default_rng(13)
    big = rng.standard_normal((60, 75)).astype(np.float32)
    x = big[3::2, ::3]                                    # non-contiguous, both axes
    w = rng.standard_normal((3, 5)).astype(np.float32)
    assert not x.flags.c_contiguous
    ok, why = within_bound(dn.correlate(x, w, border=border), x, w, border=border)
    assert ok, why
    np.testing.assert_array_equal(dn.correlate(x, w, border=border),
                                  dn.correlate(np.ascontiguousarray(x), w, border=border))


@pytest.mark.parametrize("border", BORDERS)
def test_numba_index_map_matches_the_oracle_source_index(border):
    dn = numba_module()
    for n in (1, 2, 3, 7):
        for lo, hi in ((0, 0), (2, 1), (9, 13)):          # wider than the axis: repeated rule
            got = dn.index_map(n, lo, hi, border)
            expected = [source_index(i, n, border) for i in range(-lo, n + hi)]
            assert list(got) == [-1 if e is None else e for e in expected], (n, lo, hi)


def test_numba_refuses_what_it_does_not_do():
    dn = numba_module()
    assert dn.supports(image_case("correlate", (5, 6, 4), (3, 2, 3)).spec)
    assert dn.supports(image_case("correlate", (80, 80), (33, 33)).spec)
    assert dn.supports(image_case("correlate", (16, 16, 3), (3, 3, 1)).spec) is None


# ---------------------------------------------------------------------------------------
# Planted separable bugs are rejected by convbench.verify
# ---------------------------------------------------------------------------------------

def separable_user(bug=None):
    """A user's two-pass filter from the kernel's leading singular pair; ``bug`` plants
    one mistake: the second factor's pass left out, or the factors on swapped axes."""

    def fn(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
        from numpy.lib.stride_tricks import sliding_window_view

        pads = image_padding(w.shape, padding, origin)
        kwargs = {"constant_values": cval} if border == "constant" else {}
        xp = np.pad(x.astype(np.float64), pads, mode=border, **kwargs)
        u, s, vt = np.linalg.svd(w.astype(np.float64))
        col, row = u[:, 0] * s[0], vt[0]                 # w = col (x) row when rank 1
        if bug == "wrong_axis_order":
            col, row = row, col
        t = sliding_window_view(xp, len(col), axis=0) @ col
        n1 = xp.shape[1] - w.shape[1] + 1
        if bug == "second_factor_dropped":
            y = t[:, :n1]
        else:
            y = sliding_window_view(t, len(row), axis=1) @ row
        out = result_dtype(x.dtype, w.dtype)
        return round_saturate(y, out_dtype) if out_dtype is not None else y.astype(out)

    fn.__name__ = f"separable_{bug or 'correct'}"
    return fn


def separable_cases():
    cases = []
    for border in BORDERS:
        cases.append(image_case("correlate", (12, 11), (3, 3), data=("random", "sobel"),
                                border=border))
        cases.append(image_case("correlate", (13, 9), (5, 3), data=("random", "gauss1"),
                                border=border, cval=0.5))
    if photos_available() is None:
        cases.append(image_case("correlate", (10, 10), (3, 3), "uint8", data=("camera", "sobel"),
                                out_dtype="uint8", border="edge"))
    return cases


def test_correct_separable_user_function_passes():
    report = convbench.verify("correlate", separable_user(), separable_cases())
    assert report.passed, str(report)


@pytest.mark.parametrize("bug", ["second_factor_dropped", "wrong_axis_order"])
def test_planted_separable_bug_is_rejected(bug):
    report = convbench.verify("correlate", separable_user(bug), separable_cases())
    assert not report.passed
    assert len(report.failures) >= len(BORDERS), str(report)   # not a lucky single case


def test_shipped_candidates_pass_the_separable_cases():
    report = verify_candidates(registry.candidates("correlate", ["separable_numpy", "direct_numba"]),
                               separable_cases())
    assert report.passed, str(report)


# ---------------------------------------------------------------------------------------
# separable_numba: the same plans, passes in numba
# ---------------------------------------------------------------------------------------

def separable_numba_module():
    pytest.importorskip("numba")
    from candidates.correlate import separable_numba

    return separable_numba


def large_separable_cases(op="correlate"):
    """Kernels large enough that the two-pass plan is used (2 (kh + kw) <= kh kw)."""
    cases = []
    for border in BORDERS:
        cases.append(image_case(op, (40, 37), (9, 9), data=("random", "gauss2"), border=border,
                                cval=0.5))
        cases.append(image_case(op, (23, 30), (11, 7), data=("random", "gauss2"), border=border,
                                origin=(2, -3)))
    for padding in ("valid", "full"):
        cases.append(image_case(op, (31, 29), (9, 9), data=("random", "box"), padding=padding,
                                border="symmetric"))
    cases.append(image_case(op, (30, 20, 3), (9, 9, 1), data=("random", "gauss2"), border="edge"))
    cases.append(image_case(op, (30, 21), (9, 9), "float64", data=("random", "gauss2"),
                            border="reflect"))
    cases.append(image_case(op, (30, 21), (9, 9), "float16", "float32", data=("random", "gauss2"),
                            border="reflect"))
    cases.append(image_case(op, (30, 21), (9, 9), "uint8", data=("random", "box"),
                            out_dtype="uint8", border="edge"))
    cases.append(image_case(op, (30, 21), (9, 9), "uint8", data=("random", "gauss2"),
                            out_dtype="uint8", border="wrap", cval=3))
    cases.append(image_case(op, (50, 44), (31, 31), data=("random", "gauss5"), border="symmetric"))
    return cases


@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_separable_numba_two_pass_cases(op):
    dn = separable_numba_module()
    report = verify_candidates([registry.get(op, "separable_numba")], large_separable_cases(op))
    assert report.passed, str(report)
    assert report.counts()["pass"] == len(large_separable_cases(op))
    for case in large_separable_cases("correlate"):      # the two-pass plan really ran
        x, w = case.arrays()
        assert dn.plan_for(w, x.dtype)[0] == "separable", case.id


def test_separable_numba_plans():
    dn = separable_numba_module()
    rng = np.random.default_rng(11)
    plan = dn.plan_for(k32(gaussian_kernel((31, 31), 5.0)), np.float32)
    assert plan[0] == "separable" and len(plan[2]) == 1
    assert dn.plan_for(rng.standard_normal((9, 9)).astype(np.float32), np.float32) == ("direct",)
    assert dn.plan_for(rng.standard_normal((63, 63)).astype(np.float32), np.float32) == ("fallback",)
    assert dn.plan_for(k32(NAMED_KERNELS["sobel"]), np.float32) == ("direct",)   # 3x3: one pass
    a, b = rng.uniform(0.5, 1, (2, 15)), rng.uniform(0.5, 1, (2, 15))
    rank_two = (np.outer(a[0], b[0]) + np.outer(a[1], b[1])).astype(np.float32)
    plan = dn.plan_for(rank_two, np.float32)
    assert plan[0] == "separable" and len(plan[2]) == 2
    x = rng.standard_normal((40, 35)).astype(np.float32)
    for border in BORDERS:
        ok, why = within_bound(dn.correlate(x, rank_two, border=border, cval=-0.25), x, rank_two,
                               border=border, cval=-0.25)
        assert ok, (border, why)


def test_separable_numba_against_scipy_with_two_threads(monkeypatch):
    from candidates import runtime

    dn = separable_numba_module()
    monkeypatch.setattr(runtime, "_threads", 2)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((300, 280)).astype(np.float32)
    w = k32(gaussian_kernel((21, 15), 3.0))
    for border in BORDERS:
        y = dn.correlate(x, w, border=border, cval=1.5)
        mode = LIBRARY_NAMES["scipy.ndimage"][border]
        expected = ndi.correlate(x.astype(np.float64), w.astype(np.float64), mode=mode, cval=1.5)
        absref = ndi.correlate(np.abs(x.astype(np.float64)), np.abs(w.astype(np.float64)),
                               mode=mode, cval=1.5)
        tol = tolerance.bound("direct", result_dtype=np.float32, ref=expected, absref=absref,
                              terms=w.size)
        assert tolerance.compare(y, expected, tol)["passed"], border


def test_separable_numba_nonfinite_images_keep_the_oracle_nan_placement():
    dn = separable_numba_module()
    x = np.random.default_rng(13).standard_normal((30, 33)).astype(np.float32)
    x[4, 6], x[18, 2], x[25, 30] = np.inf, np.nan, -np.inf
    w = k32(gaussian_kernel((9, 9), 2.0))
    w[:, 4] = 0            # a zero column: 0 * inf is NaN in the oracle
    assert dn.plan_for(w, np.float32)[0] == "separable"
    for border in ("constant", "wrap", "symmetric"):
        with np.errstate(invalid="ignore"):
            ok, why = within_bound(dn.correlate(x, w, border=border), x, w, border=border)
        assert ok, (border, why)


def test_planted_separable_numba_bugs_are_rejected(monkeypatch):
    dn = separable_numba_module()
    # the constant border's extension of the first pass left at cval instead of cval * sum(v)
    cases = [c for c in large_separable_cases() if c.spec.kwargs.get("border") == "constant"]
    fn = registry.get("correlate", "separable_numba").function()
    assert convbench.verify("correlate", fn, cases).passed
    monkeypatch.setattr(dn, "first_pass_fill", lambda border, cval, v: cval)
    dn.clear_cache()
    report = convbench.verify("correlate", fn, cases)
    assert not report.passed, str(report)
