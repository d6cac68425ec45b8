"""The default choice is right for the values it is given (convbench.values).

Expected values are hand-derived (a box of ones sums to its tap count, a window that holds
a NaN is NaN) or come from the float64 oracle / scipy.ndimage, never from convbench.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import convbench
from convbench import registry, values
from convbench.choose import choose
from convbench.spec import Spec
from convbench.tolerance import gamma
from refimpl import correlate as ref

FFT_NAMES = ("fft_ducc", "fft_scipy", "fft_tiled_scipy", "fftconvolve_scipy", "oaconvolve_scipy")


def spec_of(op, x, w, **kwargs):
    return Spec.make(op, [x.shape, w.shape], [x.dtype.name, w.dtype.name], **kwargs)


def available_fft():
    for name in FFT_NAMES:
        candidate = registry.get("correlate", name)
        if candidate.unavailable() is None:
            return candidate
    pytest.skip("no FFT candidate available")


# ------------------------------------------------------------------ NaN and Inf


def test_one_nan_pixel_poisons_only_its_windows():
    """One NaN in a 256x256 image, a 31x31 kernel without zero taps: exactly the 31 x 31
    outputs whose window holds it are NaN; the rest equals scipy.ndimage (float64)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((256, 256)).astype(np.float32)
    w = (rng.random((31, 31)) + 0.5).astype(np.float32)
    x[100, 140] = np.nan
    y = convbench.correlate(x, w)
    nan = np.isnan(y)
    assert nan.sum() == 31 * 31
    assert nan[100 - 15:100 + 16, 140 - 15:140 + 16].all()
    clean = np.where(np.isnan(x), 0, x).astype(np.float64)
    expected = ndimage.correlate(clean, w.astype(np.float64), mode="constant")
    np.testing.assert_allclose(y[~nan], expected[~nan], rtol=1e-4, atol=1e-3)


def test_zero_taps_and_opposite_infinities_follow_ieee():
    """0 * Inf is NaN and Inf - Inf is NaN, as in the oracle's sum (scipy.ndimage skips
    zero taps and would put Inf or a number there)."""
    x = np.ones((12, 12))
    x[3, 3] = np.inf
    x[8, 8], x[8, 10] = np.inf, -np.inf
    w = np.array([[0., 1., 0.], [1., -4., 1.], [0., 1., 0.]])
    y = convbench.correlate(x, w, border="edge")
    expected = ref.correlate(x, w, border="edge")
    for test in (np.isnan, np.isposinf, np.isneginf):
        np.testing.assert_array_equal(test(y), test(expected))
    assert np.isnan(y[2, 2])          # the zero corner tap meets the Inf: NaN, not Inf
    assert np.isneginf(y[3, 3])       # -4 * Inf
    assert np.isnan(y[8, 9])          # +Inf and -Inf meet taps of weight 1: Inf - Inf


def test_nan_in_the_kernel_reaches_every_output():
    """Every 'same' output multiplies every tap (by a sample or by cval 0): all NaN, and
    the default choice does not stumble on the kernel (no LinAlgError)."""
    w = np.ones((5, 5))
    w[1, 3] = np.nan
    y = convbench.correlate(np.random.default_rng(2).standard_normal((32, 32)), w)
    assert np.isnan(y).all()


def test_a_named_algorithm_is_never_given_values_it_declares_it_cannot_place():
    x = np.ones((16, 16), np.float32)
    x[4, 4] = np.nan
    name = available_fft().name
    with pytest.raises(ValueError, match=rf"algorithm='{name}' cannot run this call: .*NaN or Inf"):
        convbench.correlate(x, np.ones((3, 3), np.float32), algorithm=name)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_into_an_integer_out_dtype_are_refused(bad):
    x = np.full((8, 8), 10.0)
    x[2, 2] = bad
    with pytest.raises(ValueError, match=r"NaN or Inf, which out_dtype=uint8 cannot represent"):
        convbench.correlate(x, np.ones((3, 3)), out_dtype=np.uint8)


def test_gaussian_default_places_nan_like_the_oracle():
    x = np.random.default_rng(3).standard_normal((40, 30))
    x[10, 12] = np.nan
    y = convbench.gaussian(x, 2.0, border="wrap")
    spec = Spec.make("gaussian", [x.shape], ["float64"], sigma=2.0, border="wrap")
    expected = spec.operation.oracle(spec, (x,))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(expected))
    assert np.isnan(y).sum() == 17 * 17     # radius int(4 * 2 + 0.5) = 8 per side


# --------------------------------------------------------------- dynamic range


def test_a_spike_of_1e12_does_not_disturb_the_far_field():
    """ones with one 1e12 sample, a normalised positive 31x31 kernel: every output whose
    window misses the spike is exactly sum(w) = 1 (an FFT's normwise error there is ~1e5
    times the answer, so the default must not take it)."""
    rng = np.random.default_rng(4)
    x = np.ones((256, 256), np.float32)
    x[0, 0] = 1e12
    w = rng.random((31, 31)).astype(np.float32) + 0.1
    w /= w.sum(dtype=np.float64)
    y = convbench.correlate(x, w)
    far = y[40:-15, 40:-15]
    np.testing.assert_allclose(far, w.sum(dtype=np.float64), rtol=1e-5)
    spec = spec_of("correlate", x, w)
    assert values.certify(available_fft(), spec, (x, w)) is not None


def test_well_scaled_data_keeps_the_fft_and_meets_the_contract():
    """A random 1024x1024 image with a random 63x63 kernel: the FFT is certified, and the
    default's error at sampled points is within CONTRACT_FACTOR times the direct bound."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1024, 1024)).astype(np.float32)
    w = rng.standard_normal((63, 63)).astype(np.float32)
    spec = spec_of("correlate", x, w, border="reflect")
    fft = available_fft()
    assert values.certify(fft, spec, (x, w)) is None
    assert choose(spec, arrays=(x, w)).error_model(spec) == "fft" or \
        registry.get("correlate", "fft_ducc").unavailable()
    y = convbench.correlate(x, w, border="reflect")
    u_gamma = gamma(w.size, 2.0**-24)
    ax, aw = np.abs(x).astype(np.float64), np.abs(w).astype(np.float64)
    for index in ((0, 0), (511, 17), (1023, 1023), (300, 1000)):
        exact = ref.correlate_at(x, w, index, border="reflect")
        scale = ref.correlate_at(ax, aw, index, border="reflect")
        assert abs(y[index] - exact) <= values.CONTRACT_FACTOR * u_gamma * scale


def test_accuracy_normwise_is_the_callers_opt_in():
    x = np.ones((64, 64), np.float32)
    w = np.ones((3, 3), np.float32)
    np.testing.assert_allclose(convbench.correlate(x, w, border="edge", accuracy="normwise"), 9.0,
                               rtol=1e-5)
    with pytest.raises(ValueError, match=r"accuracy must be one of \('elementwise', 'normwise'\)"):
        convbench.correlate(x, w, accuracy="fast")


def test_gaussian_default_is_exact_near_a_spike():
    """The recursive Gaussian's error is a fraction of max|x|: near zero values next to a
    1e9 spike it would be ~1e6; the default must not take it there."""
    x = np.ones((300, 300), np.float32)
    x[150, 150] = 1e9
    y = convbench.gaussian(x, 20.0, border="edge")
    spec = Spec.make("gaussian", [x.shape], ["float32"], sigma=20.0, border="edge")
    iir = registry.get("gaussian", "iir_numba")
    if iir.unavailable() is None:
        assert values.certify(iir, spec, (x,)) is not None
    # farther than the kernel's radius (int(4 * 20 + 0.5) = 80) from the spike, a
    # normalised kernel over ones gives 1
    np.testing.assert_allclose(y[:60, :60], 1.0, rtol=1e-5)


# ------------------------------------------------------------- exact integers


def test_int32_above_2_24_is_exact():
    y = convbench.correlate(np.full((4, 4), 2**24 + 1, np.int32), np.ones((1, 1), np.int32),
                            out_dtype=np.int32)
    assert y.dtype == np.int32
    assert (y == 2**24 + 1).all()


@pytest.mark.parametrize("dtype, low, high, out", [
    ("int32", 0, 2**28, "int64"),
    ("uint32", 2**32 - 1000, 2**32 - 1, "uint32"),
    ("int64", 2**55, 2**56, "int64"),
])
def test_wide_integers_are_exact(dtype, low, high, out):
    rng = np.random.default_rng(6)
    x = rng.integers(low, high, (12, 11), endpoint=True).astype(dtype)
    w = rng.integers(-3, 4, (3, 3)).astype(dtype if dtype != "uint32" else "int16")
    if dtype == "uint32":
        w = np.abs(w)
    y = convbench.correlate(x, w, border="symmetric", out_dtype=out)
    expected = ref.correlate(x, w, border="symmetric", out_dtype=out)   # Python-int sums
    assert y.dtype == np.dtype(out)
    np.testing.assert_array_equal(y, expected)


def test_integer_sums_no_algorithm_holds_exactly_are_refused():
    x = np.full((4, 4), 2**62, np.int64)      # three taps: sums up to 3 * 2**62 >= 2**63
    with pytest.raises(ValueError, match=r"integer sums up to .* are not exact"):
        convbench.correlate(x, np.ones((1, 3), np.int64), out_dtype=np.int64)


def test_integer_bound_counts_cval():
    spec = Spec.make("correlate", [(3,), (2,)], ["int32", "int32"], cval=-7, out_dtype="int32")
    assert values.integer_bound(spec, np.array([1, 2, 3], np.int32), np.array([2, -5], np.int32)) \
        == 7 * 7
    assert values.exact_integer(spec)
    assert not values.exact_integer(spec.replace(out_dtype="float64"))


# ------------------------------------------------------------ the declarations


def test_declarations_are_held_by_verification():
    """Every candidate that declares NONFINITE or EXACT_INT_BITS passes the small cases
    that exercise them (and the others are not given those cases)."""
    from convbench.cases import suite
    from convbench.verification import verify_candidates

    cases = [c for c in suite("small", "correlate")
             if c.nonfinite or values.exact_integer(c.spec)]
    assert len(cases) >= 8
    for candidate in registry.candidates("correlate"):
        if candidate.unavailable():
            continue
        report = verify_candidates([candidate], cases)
        assert not report.failures, str(report)
        ran = [r for r in report.rows if r.status == "pass"]
        if not candidate.nonfinite and candidate.exact_int_bits(cases[0].spec) == 0:
            assert not ran, candidate.name
    assert registry.get("correlate", "shift_add_numpy").nonfinite
    assert registry.get("correlate", "shift_add_numpy").exact_int_bits(cases[0].spec) == 63


def test_complex_images_are_certified_on_their_magnitudes():
    """|x| and |w| of complex arrays are real: the certificate runs in the real type."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((96, 90)) + 1j * rng.standard_normal((96, 90))).astype(np.complex64)
    w = (rng.standard_normal((21, 21)) + 1j * rng.standard_normal((21, 21))).astype(np.complex64)
    y = convbench.correlate(x, w, border="wrap")
    assert y.dtype == np.complex64 and y.shape == x.shape
    for index in ((0, 0), (50, 45), (95, 89)):
        expected = ref.correlate_at(x, w, index, border="wrap")
        assert abs(y[index] - expected) <= 1e-4 * abs(expected) + 1e-3
