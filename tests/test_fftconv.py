"""The FFT route equals the direct answer: scipy.ndimage / scipy.signal, torch, and the oracles.

Tolerances are normwise, as for any FFT algorithm: each output sample differs from the exact
sum by at most about u * log(L) * ||xp||_2 * ||w||_2, with ``xp`` the padded image, whose
every sample is bounded by max(|x|, |cval|). We allow 1e-12 (a few thousand u) times that.
"""
from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest
import scipy.ndimage as ndimage
import scipy.signal as signal
import torch
import torch.nn.functional as F

from refimpl.fftconv import circular_convolve, dilate_kernel, fft_conv, fft_convolve, fft_correlate
from refimpl.geometry import image_padding, layer_padding
from refimpl.pad import BORDERS, LIBRARY_NAMES, pad

OPS = {"correlate": (fft_correlate, ndimage.correlate), "convolve": (fft_convolve, ndimage.convolve)}

# (x shape, w shape): odd and even kernels, 1-D to 3-D, 1-sample images, kernel larger than x
SHAPES = [
    ((7,), (3,)), ((7,), (4,)), ((7,), (1,)), ((5,), (9,)), ((1,), (3,)), ((2,), (6,)),
    ((6, 5), (3, 2)), ((6, 5), (4, 4)), ((5, 4), (1, 5)), ((3, 2), (7, 5)), ((1, 4), (2, 3)),
    ((5, 4, 3), (3, 2, 3)), ((4, 3, 3), (2, 2, 4)),
]


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng(abs(hash(repr(key))) % 2**32)


def tolerance(x, w, cval, padded_size) -> float:
    sample_bound = max(float(np.max(np.abs(x))), abs(cval))
    return 1e-12 * sample_bound * np.sqrt(padded_size) * float(np.linalg.norm(w))


def origins(w_shape):
    """Per-axis extreme and zero origins allowed by scipy.ndimage: -(k//2) .. (k-1)//2."""
    lows = tuple(-(k // 2) for k in w_shape)
    highs = tuple((k - 1) // 2 for k in w_shape)
    return sorted({tuple([0] * len(w_shape)), lows, highs})


def padded_size(x_shape, w_shape, padding="same", origin=0, convolve=False):
    pads = image_padding(w_shape, padding, origin, convolve=convolve)
    return int(np.prod([n + lo + hi for n, (lo, hi) in zip(x_shape, pads)]))


# ----------------------------------------------------------------------------------------
# image form against scipy
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("x_shape,w_shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_same_equals_scipy_ndimage(op, border, x_shape, w_shape):
    ours, theirs = OPS[op]
    rng = rng_for(op, border, x_shape, w_shape)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    cval = 1.5 if border == "constant" else 0.0
    mode = LIBRARY_NAMES["scipy.ndimage"][border]
    for origin in origins(w_shape):
        y = ours(x, w, border=border, cval=cval, origin=origin)
        expected = theirs(x, w, mode=mode, cval=cval, origin=origin)
        assert y.shape == x.shape and y.dtype == np.float64
        tol = tolerance(x, w, cval, padded_size(x_shape, w_shape, "same", origin, op == "convolve"))
        np.testing.assert_allclose(y, expected, rtol=0, atol=tol, err_msg=f"origin={origin}")


SIGNAL_CASES = [(padding, x_shape, w_shape) for padding in ("valid", "full")
                for x_shape, w_shape in SHAPES
                if padding == "full" or all(k <= n for n, k in zip(x_shape, w_shape))]


@pytest.mark.parametrize("op", ["correlate", "convolve"])
@pytest.mark.parametrize("padding,x_shape,w_shape", SIGNAL_CASES,
                         ids=[f"{p}-{x}-{w}".replace(" ", "") for p, x, w in SIGNAL_CASES])
def test_valid_and_full_equal_scipy_signal(op, padding, x_shape, w_shape):
    rng = rng_for(op, padding, x_shape, w_shape)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    ours = fft_correlate if op == "correlate" else fft_convolve
    theirs = signal.correlate if op == "correlate" else signal.convolve
    y = ours(x, w, padding=padding)
    expected = theirs(x, w, mode=padding, method="direct")
    assert y.shape == expected.shape
    tol = tolerance(x, w, 0.0, padded_size(x_shape, w_shape, padding))
    np.testing.assert_allclose(y, expected, rtol=0, atol=tol)


def test_full_with_a_border_pads_by_that_border():
    x = np.array([1., 2., 3.])
    w = np.array([1., 10., 100.])
    # full pads k-1 = 2 per side: edge gives 1 1 | 1 2 3 | 3 3
    assert np.allclose(fft_correlate(x, w, padding="full", border="edge"),
                       [111., 211., 321., 332., 333.])


def test_complex_input_is_not_conjugated():
    """y[i] = sum_j w[j] xp[i+j] with w as given; scipy.ndimage conjugates a complex kernel."""
    rng = rng_for("complex")
    x = rng.standard_normal((6, 5)) + 1j * rng.standard_normal((6, 5))
    w = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    y = fft_correlate(x, w, border="reflect")
    assert y.dtype == np.complex128
    expected = ndimage.correlate(x, np.conj(w), mode="mirror")
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12 * np.abs(x).sum() * np.abs(w).sum())
    # a complex image with a real kernel
    y = fft_convolve(x, w.real, border="wrap")
    np.testing.assert_allclose(y, ndimage.convolve(x, w.real, mode="wrap"), rtol=0, atol=1e-12 * 60)


def test_integer_input_gives_float64():
    x = np.array([0, 10, 200, 250, 5], dtype=np.uint8)
    y = fft_correlate(x, np.array([1, -2, 1], dtype=np.int16), border="edge")
    assert y.dtype == np.float64
    assert np.allclose(y, [10., 180., -140., -295., 245.])       # no modulo-256 wrap


# ----------------------------------------------------------------------------------------
# wide padding (kernel larger than the image) against a direct sum on numpy.pad's extension
# ----------------------------------------------------------------------------------------

def direct_correlate(x, w, border, cval, padding="same", origin=0):
    xp = pad(x, image_padding(w.shape, padding, origin), border, cval)
    out_shape = tuple(p - k + 1 for p, k in zip(xp.shape, w.shape))
    y = np.zeros(out_shape)
    for j in np.ndindex(*w.shape):
        y += w[j] * xp[tuple(slice(a, a + n) for a, n in zip(j, out_shape))]
    return y


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("padding", ["same", "full"])
@pytest.mark.parametrize("x_shape,w_shape", [((3,), (11,)), ((1,), (4,)), ((2, 3), (9, 8)),
                                             ((1, 2), (5, 6))], ids=str)
def test_padding_wider_than_the_image(border, padding, x_shape, w_shape):
    rng = rng_for("wide", border, padding, x_shape, w_shape)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    y = fft_correlate(x, w, border=border, cval=-0.5, padding=padding)
    expected = direct_correlate(x, w, border, -0.5, padding)
    np.testing.assert_allclose(y, expected, rtol=0,
                               atol=tolerance(x, w, -0.5, padded_size(x_shape, w_shape, padding)))


# ----------------------------------------------------------------------------------------
# the direct oracle (refimpl.correlate), every border, padding wider than the image included
# ----------------------------------------------------------------------------------------

def _oracle():
    try:
        module = importlib.import_module("refimpl.correlate")
    except ImportError:
        pytest.skip("refimpl/correlate.py is not there yet")
    if not hasattr(module, "correlate") or not hasattr(module, "convolve"):
        pytest.skip("refimpl.correlate has no correlate/convolve yet")
    return module


ORACLE_SHAPES = [((6,), (3,)), ((6,), (4,)), ((2,), (7,)), ((1,), (2,)),
                 ((4, 3), (3, 2)), ((2, 3), (5, 4)), ((3, 2, 2), (2, 3, 3))]


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("op", ["correlate", "convolve"])
@pytest.mark.parametrize("x_shape,w_shape", ORACLE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_equals_refimpl_correlate(op, border, x_shape, w_shape):
    oracle = getattr(_oracle(), op)
    ours = fft_correlate if op == "correlate" else fft_convolve
    rng = rng_for("oracle", op, border, x_shape, w_shape)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    cval = 2.0 if border == "constant" else 0.0
    cases = [dict(padding="same", origin=o) for o in origins(w_shape)] + [dict(padding="full")]
    if all(k <= n for n, k in zip(x_shape, w_shape)):
        cases.append(dict(padding="valid"))
    for kw in cases:
        y = ours(x, w, border=border, cval=cval, **kw)
        expected = oracle(x, w, border=border, cval=cval, **kw)
        assert y.shape == expected.shape, kw
        size = padded_size(x_shape, w_shape, kw["padding"], kw.get("origin", 0), op == "convolve")
        np.testing.assert_allclose(y, expected, rtol=0, atol=tolerance(x, w, cval, size),
                                   err_msg=str(kw))


# ----------------------------------------------------------------------------------------
# wrap is exact circular convolution
# ----------------------------------------------------------------------------------------

def direct_circular(x, w):
    y = np.zeros(x.shape, dtype=np.result_type(x, w, np.float64))
    for i in np.ndindex(*x.shape):
        for j in np.ndindex(*w.shape):
            y[i] += w[j] * x[tuple((a - b) % n for a, b, n in zip(i, j, x.shape))]
    return y


@pytest.mark.parametrize("x_shape,w_shape", [((7,), (3,)), ((6,), (4,)), ((5,), (5,)), ((4,), (1,)),
                                             ((5, 6), (3, 4)), ((4, 4), (4, 1)), ((3, 4, 5), (2, 3, 2))],
                         ids=lambda s: "x".join(map(str, s)))
def test_circular_convolve_is_the_circular_sum(x_shape, w_shape):
    rng = rng_for("circ", x_shape, w_shape)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    np.testing.assert_allclose(circular_convolve(x, w), direct_circular(x, w), rtol=0, atol=1e-12)


@pytest.mark.parametrize("x_shape,w_shape", [((7,), (3,)), ((6,), (4,)), ((5,), (5,)), ((6,), (6,)),
                                             ((5, 6), (3, 4)), ((4, 4), (4, 1)), ((3, 4, 5), (2, 3, 2))],
                         ids=lambda s: "x".join(map(str, s)))
def test_wrap_border_is_circular_convolution_with_the_kernel_rolled_by_its_anchor(x_shape, w_shape):
    """fft_convolve(x, w, border="wrap", origin=o) == circular_convolve(x, roll(w0, -(k//2 + o)))."""
    rng = rng_for("wrap", x_shape, w_shape)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    w0 = np.zeros(x_shape)
    w0[tuple(slice(0, k) for k in w_shape)] = w
    for origin in origins(w_shape):
        anchor = tuple(k // 2 + o for k, o in zip(w_shape, origin))
        rolled = np.roll(w0, shift=tuple(-a for a in anchor), axis=tuple(range(x.ndim)))
        np.testing.assert_allclose(fft_convolve(x, w, border="wrap", origin=origin),
                                   circular_convolve(x, rolled), rtol=0, atol=1e-12,
                                   err_msg=f"origin={origin}")


def test_circular_convolve_refuses_a_larger_kernel():
    with pytest.raises(ValueError, match="no larger than x"):
        circular_convolve(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="same rank"):
        circular_convolve(np.ones(3), np.ones((1, 1)))


# ----------------------------------------------------------------------------------------
# layer form against torch (float64)
# ----------------------------------------------------------------------------------------

TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}

# (x shape, w shape, stride, padding, dilation, groups)
LAYER_CASES = [
    ((2, 3, 9), (4, 3, 3), 1, 1, 1, 1),
    ((2, 4, 10), (6, 2, 4), 2, 2, 1, 2),
    ((1, 3, 11), (3, 1, 3), 3, 0, 2, 3),
    ((1, 2, 8), (2, 2, 5), 1, "same", 1, 1),
    ((1, 2, 8), (2, 2, 4), 1, "valid", 2, 1),
    ((2, 2, 7, 6), (4, 2, 3, 3), 1, 1, 1, 1),
    ((1, 4, 8, 9), (4, 2, 3, 2), (2, 1), (1, 2), (1, 2), 2),
    ((1, 3, 9, 7), (6, 1, 2, 3), (1, 3), "valid", (2, 1), 3),
    ((1, 2, 6, 6), (2, 2, 4, 3), 1, "same", (1, 2), 1),
    ((1, 2, 5, 4, 6), (2, 1, 2, 3, 3), (1, 2, 2), 1, (2, 1, 1), 2),
]


def layer_id(case):
    return "-".join(str(v).replace(" ", "") for v in case)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")   # torch's own note
@pytest.mark.parametrize("case", LAYER_CASES, ids=layer_id)
@pytest.mark.parametrize("with_bias", [False, True])
def test_layer_form_equals_torch(case, with_bias):
    x_shape, w_shape, stride, padding, dilation, groups = case
    rng = rng_for("layer", case, with_bias)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    bias = rng.standard_normal(w_shape[0]) if with_bias else None
    y = fft_conv(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
    expected = TORCH_CONV[x.ndim - 2](
        torch.from_numpy(x), torch.from_numpy(w), None if bias is None else torch.from_numpy(bias),
        stride=stride, padding=padding, dilation=dilation, groups=groups).numpy()
    assert y.shape == expected.shape and y.dtype == np.float64
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12 * np.abs(x).max() * np.abs(w).sum() * 10)


def torch_pad(x, pads, border, cval):
    """x (numpy, N C *spatial) padded on the spatial axes by F.pad, or None if torch cannot."""
    mode = LIBRARY_NAMES["torch"].get(border)
    if mode is None:
        return None
    flat = [v for lo_hi in reversed(pads) for v in lo_hi]        # last axis first
    t = torch.from_numpy(x)
    if mode == "constant":
        return F.pad(t, flat, mode="constant", value=cval)
    if mode == "reflect" and any(max(p) >= n for p, n in zip(pads, x.shape[2:])):
        return None                                              # torch: padding < size
    return F.pad(t, flat, mode=mode)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("case", [
    ((1, 2, 9), (3, 2, 4), 2, ((3, 1),), 1, 1),
    ((2, 2, 8), (2, 1, 3), 1, "same", 2, 2),
    ((1, 3, 7), (3, 3, 3), 3, "same", 1, 1),                    # JAX/TF SAME with stride
    ((1, 2, 7, 6), (2, 2, 3, 4), (2, 1), ((1, 2), (2, 0)), 1, 1),
    ((1, 2, 6, 7), (4, 1, 3, 3), (1, 2), "same", (2, 1), 2),
    ((1, 1, 4, 5), (1, 1, 3, 3), 1, 4, 1, 1),                   # padding wider than the image
], ids=layer_id)
def test_layer_form_borders_equal_torch_after_padding(border, case):
    x_shape, w_shape, stride, padding, dilation, groups = case
    rng = rng_for("layer-border", border, case)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    bias = rng.standard_normal(w_shape[0])
    cval = 0.75 if border == "constant" else 0.0
    pads = layer_padding(x_shape[2:], w_shape[2:], padding, stride, dilation)
    xp = torch_pad(x, pads, border, cval)
    if xp is None:                                              # torch lacks it: numpy.pad
        xp = torch.from_numpy(np.pad(x, ((0, 0), (0, 0)) + pads, mode=border))
    expected = TORCH_CONV[x.ndim - 2](xp, torch.from_numpy(w), torch.from_numpy(bias),
                                      stride=stride, dilation=dilation, groups=groups).numpy()
    y = fft_conv(x, w, bias, stride=stride, padding=padding, dilation=dilation, groups=groups,
                 border=border, cval=cval)
    assert y.shape == expected.shape
    scale = max(np.abs(x).max(), cval) * np.abs(w).sum()
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12 * scale * 10)


def _conv_oracle():
    try:
        module = importlib.import_module("refimpl.conv")
    except ImportError:
        pytest.skip("refimpl/conv.py is not there yet")
    if not hasattr(module, "conv"):
        pytest.skip("refimpl.conv has no conv yet")
    return module.conv


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("case", [
    ((2, 2, 7), (4, 1, 3), 2, ((2, 3),), 2, 2),
    ((1, 1, 2), (2, 1, 5), 1, 4, 1, 1),                         # padding wider than the image
    ((1, 2, 5, 4), (2, 2, 2, 3), (2, 1), "same", (1, 2), 1),
    ((1, 2, 3, 2), (2, 2, 4, 4), 1, ((3, 2), (4, 1)), 1, 1),    # kernel larger than the image
    ((1, 2, 3, 3, 2), (2, 1, 2, 2, 2), (1, 2, 1), 1, 1, 2),
], ids=layer_id)
def test_layer_form_equals_refimpl_conv(border, case):
    conv = _conv_oracle()
    x_shape, w_shape, stride, padding, dilation, groups = case
    rng = rng_for("conv-oracle", border, case)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    bias = rng.standard_normal(w_shape[0])
    cval = -1.25 if border == "constant" else 0.0
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, border=border,
              cval=cval)
    y = fft_conv(x, w, bias, **kw)
    expected = conv(x, w, bias, **kw)
    assert y.shape == expected.shape and y.dtype == expected.dtype
    scale = max(np.abs(x).max(), abs(cval)) * np.abs(w).sum()
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12 * scale * 10)


def test_layer_form_complex_equals_refimpl_conv():
    conv = _conv_oracle()
    rng = rng_for("conv-complex")
    x = rng.standard_normal((1, 2, 6)) + 1j * rng.standard_normal((1, 2, 6))
    w = rng.standard_normal((2, 2, 3)) + 1j * rng.standard_normal((2, 2, 3))
    y = fft_conv(x, w, padding=1, border="reflect")
    assert y.dtype == np.complex128
    np.testing.assert_allclose(y, conv(x, w, padding=1, border="reflect"), rtol=0, atol=1e-12 * 100)


def test_layer_form_is_the_image_form_per_channel():
    """One image, one channel, stride 1: fft_conv is fft_correlate with 'valid' on the padded input."""
    rng = rng_for("layer-image")
    x = rng.standard_normal((1, 1, 6, 5))
    w = rng.standard_normal((1, 1, 3, 2))
    y = fft_conv(x, w, padding=((1, 1), (1, 0)), border="symmetric")
    np.testing.assert_allclose(y[0, 0], fft_correlate(x[0, 0], w[0, 0], border="symmetric"),
                               rtol=0, atol=1e-12 * 30)


def test_dilate_kernel():
    w = np.arange(1., 7.).reshape(1, 1, 2, 3)
    wd = dilate_kernel(w, (3, 2))
    assert wd.shape == (1, 1, 4, 5)
    assert np.array_equal(wd[0, 0], [[1, 0, 2, 0, 3], [0] * 5, [0] * 5, [4, 0, 5, 0, 6]])


# ----------------------------------------------------------------------------------------
# errors: clear ValueError/TypeError before any work
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("call,match", [
    (lambda: fft_correlate(np.ones(3), np.ones((2, 2))), "same rank"),
    (lambda: fft_correlate(np.ones(0), np.ones(1)), "empty"),
    (lambda: fft_convolve(np.ones(3), np.ones(3), border="bogus"), "unknown border"),
    (lambda: fft_correlate(np.ones(3), np.ones(4), padding="valid"), "larger than the image"),
    (lambda: fft_correlate(np.ones(5), np.ones(3), origin=2), "origin"),
    (lambda: fft_correlate(np.ones(5), np.ones(3), padding="full", origin=1), "origin"),
    (lambda: fft_correlate(np.ones(5), np.ones(3), padding="middle"), "padding"),
    (lambda: fft_conv(np.ones((1, 3, 5)), np.ones((2, 2, 3))), "C/groups"),
    (lambda: fft_conv(np.ones((1, 4, 5)), np.ones((3, 2, 3)), groups=2), "groups"),
    (lambda: fft_conv(np.ones((1, 2, 5)), np.ones((2, 2, 3)), groups=0), "groups"),
    (lambda: fft_conv(np.ones((2, 5)), np.ones((2, 3))), "spatial"),
    (lambda: fft_conv(np.ones((1, 1, 5)), np.ones((1, 1, 3)), stride=0), "stride"),
    (lambda: fft_conv(np.ones((1, 1, 5)), np.ones((1, 1, 3)), np.ones(2)), "bias"),
    (lambda: fft_conv(np.ones((1, 1, 2)), np.ones((1, 1, 3))), "larger than the padded input"),
])
def test_bad_input_is_refused(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_no_action_flags_or_mode_keyword():
    for f in (fft_correlate, fft_convolve, fft_conv, circular_convolve):
        names = set(inspect.signature(f).parameters)
        assert not names & {"flip", "flipped", "mode"}, f.__name__


# ----------------------------------------------------------------------------------------
# the FFT candidates of the image form: candidates/correlate/fft_scipy.py, oaconvolve_scipy.py
# ----------------------------------------------------------------------------------------

import convbench                                                    # noqa: E402
from convbench import registry, values                              # noqa: E402
from convbench.cases import make_case, suite                        # noqa: E402
from convbench.verification import verify_candidates                # noqa: E402
from refimpl.dtypes import result_dtype, round_saturate             # noqa: E402

FFT_CANDIDATES = ("fft_scipy", "oaconvolve_scipy")
# the slab route's engines: scipy's pocketfft build (fft_scipy) and ducc0 (fft_ducc, an
# optional dependency: skipped with the reason when it is not installed); real images with
# two or more axes only
SLAB_CANDIDATES = ("fft_scipy", "fft_ducc")
FFT_CANDIDATES_2D = FFT_CANDIDATES + ("fft_ducc",)     # the real 2-D checks run on all three


def _available(op, name):
    candidate = registry.get(op, name)
    reason = candidate.unavailable()
    if reason:
        pytest.skip(reason)
    return candidate


@pytest.mark.parametrize("name", FFT_CANDIDATES_2D)
@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_fft_candidate_passes_the_small_suite(op, name):
    candidate = _available(op, name)
    assert candidate.error_model(suite("small", op)[0].spec) == "fft"
    report = verify_candidates([candidate], suite("small", op))
    print(report)
    assert report.passed, str(report)
    # every case is run except those whose values FFT cannot serve (NaN/Inf, exact integer
    # sums: convbench.values), and for fft_ducc the 1-D and complex ones (fft_scipy's
    # scipy.fft routes take those)
    cases = {case.id: case for case in suite("small", op)}
    skipped = [r for r in report.rows if r.status != "pass"]
    assert all(cases[r.case].nonfinite or values.exact_integer(cases[r.case].spec)
               or (name == "fft_ducc" and r.status == "unsupported")
               for r in skipped), [(r.case, r.detail) for r in skipped]
    assert sum(r.status == "pass" for r in report.rows) > len(report.rows) // 2


def test_fft_ducc_refuses_what_its_route_does_not_take():
    candidate = registry.get("correlate", "fft_ducc")
    one_d = make_case("correlate", ((9,), (3,)), "float32")
    complex_ = make_case("correlate", ((9, 8), (3, 3)), "complex128")
    two_d = make_case("correlate", ((9, 8), (3, 3)), "float32")
    assert "1-D" in candidate.supports(one_d.spec)
    assert "complex" in candidate.supports(complex_.spec)
    assert candidate.supports(two_d.spec) is None
    if candidate.unavailable() is None:     # a direct call says so too, naming the argument
        with pytest.raises(ValueError, match="x of shape"):
            candidate.function()(np.ones(9), np.ones(3))


def _fft_module():
    from candidates.correlate import fft_scipy

    return fft_scipy


def test_fft_kernel_transform_cache_hits_and_never_serves_a_stale_kernel():
    fft_scipy = _fft_module()
    oracle = _oracle().correlate
    rng = rng_for("cache")
    x = rng.standard_normal((40, 33)).astype(np.float32)
    w = rng.standard_normal((5, 4)).astype(np.float32)
    fft_scipy.clear_cache()
    first = fft_scipy.correlate(x, w, border="reflect")              # computes the transform
    assert fft_scipy.cache_info()["misses"] == 1
    second = fft_scipy.correlate(x, w, border="reflect")             # served from the LRU
    assert fft_scipy.cache_info()["hits"] == 1
    assert np.array_equal(first, second)
    fft_scipy.clear_cache()
    assert np.array_equal(fft_scipy.correlate(x, w, border="reflect"), first)   # uncached again
    # the same array object, same shape, one tap changed in place: a new answer
    w[2, 1] += 3.0
    changed = fft_scipy.correlate(x, w, border="reflect")
    assert fft_scipy.cache_info()["misses"] == 2
    expected = oracle(x, w, border="reflect")
    scale = np.sqrt(x.size + 4 * x.shape[0] + 5 * x.shape[1] + 20) * np.abs(x).max() * np.linalg.norm(w)
    np.testing.assert_allclose(changed, expected, rtol=0, atol=1e-5 * scale)
    assert np.max(np.abs(changed - first)) > 1.0
    # the LRU is bounded
    for i in range(3 * fft_scipy.CACHE_ENTRIES):
        fft_scipy.correlate(x, w + np.float32(i), border="reflect")
    assert fft_scipy.cache_info()["entries"] == fft_scipy.CACHE_ENTRIES


def test_fft_plans_zero_border_shares_its_padding_and_wrap_needs_none():
    """A zero border needs n + max(lo, hi) samples per axis, not n + lo + hi: circularly,
    the zeros after the image are also the zeros before it. A wrap border with a fast n
    is the circular correlation itself: L = n."""
    fft_scipy = _fft_module()
    from scipy.fft import next_fast_len

    kind, shape, offsets = fft_scipy.plan((1024, 1024), (63, 63), "constant", 0.0, "same", 0)
    assert kind == "zeros" and offsets == (31, 31)
    assert shape == (next_fast_len(1024 + 31), next_fast_len(1024 + 31, real=True))
    assert shape[0] < 1024 + 62
    assert fft_scipy.plan((1024, 1024), (63, 63), "constant", 1.0, "same", 0)[0] == "padded"
    assert fft_scipy.plan((1024, 1000), (7, 7), "wrap", 0.0, "same", 0) == \
        ("periodic", (1024, 1000), (3, 3))
    assert fft_scipy.plan((1021, 1000), (7, 7), "wrap", 0.0, "same", 0)[0] == "padded"  # prime
    oracle = _oracle().correlate
    rng = rng_for("plans")
    for x_shape, w_shape in (((30, 24), (9, 5)), ((8,), (13,)), ((6, 5), (11, 12))):
        x = rng.standard_normal(x_shape)
        w = rng.standard_normal(w_shape)
        for padding, origin in (("same", 0), ("same", -1), ("valid", 0), ("full", 0)):
            if padding == "valid" and any(k > n for n, k in zip(x_shape, w_shape)):
                continue
            for border in ("constant", "wrap"):
                y = fft_scipy.correlate(x, w, border=border, padding=padding, origin=origin)
                np.testing.assert_allclose(
                    y, oracle(x, w, border=border, padding=padding, origin=origin), rtol=0,
                    atol=1e-12 * np.abs(x).sum() * np.abs(w).sum(),
                    err_msg=f"{x_shape} {w_shape} {padding} {origin} {border}")


@pytest.mark.parametrize("x_shape,w_shape", [((45, 17), (9, 5)), ((40, 24), (3, 3)),
                                             ((27, 9, 6), (4, 3, 2))],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", SLAB_CANDIDATES)
def test_fft_slabs_agree_with_the_oracle_on_every_plan(monkeypatch, name, x_shape, w_shape):
    """Many slabs (8 rows each) over several jobs, on every plan, crop, dtype and out_dtype:
    slab edges, zero rows past the image and the rows the crop drops all land right, with
    either engine."""
    fft_scipy = _fft_module()
    correlate = _available("correlate", name).function()
    monkeypatch.setattr(fft_scipy, "CHUNK_BYTES", 1)         # the smallest slab: 8 rows
    oracle = _oracle().correlate
    rng = rng_for("slabs", x_shape)
    x = rng.standard_normal(x_shape) * 40
    w = rng.standard_normal(w_shape)
    for border, cval in (("constant", 0.0), ("constant", 2.0), ("wrap", 0.0), ("symmetric", 0.0)):
        for padding, origin in (("same", 0), ("same", -1), ("valid", 0), ("full", 0)):
            expected = oracle(x, w, border=border, cval=cval, padding=padding, origin=origin)
            kind = fft_scipy.plan(x.shape, w.shape, border, cval, padding, origin)[0]
            for dtype, tol in ((np.float64, 1e-12), (np.float32, 1e-5)):
                y = correlate(x.astype(dtype), w.astype(dtype), border=border, cval=cval,
                              padding=padding, origin=origin)
                assert y.dtype == dtype and y.shape == expected.shape
                np.testing.assert_allclose(y, expected, rtol=0,
                                           atol=tol * (np.abs(x).sum() + cval * x.size) * np.abs(w).sum(),
                                           err_msg=f"{kind} {border} {padding} {origin} {dtype}")
            y8 = correlate(x, w, border=border, cval=cval, padding=padding,
                           origin=origin, out_dtype=np.int16)
            assert y8.dtype == np.int16
            assert np.abs(y8.astype(float) - np.clip(expected, -2**15, 2**15 - 1)).max() <= 1
    assert fft_scipy._slab_rows((1056, 1080)) % 8 == 0


@pytest.mark.parametrize("name", FFT_CANDIDATES)
@pytest.mark.parametrize("x_shape,w_shape", [((7,), (3,)), ((6,), (4,)), ((5, 6), (3, 4)),
                                             ((9, 8), (4, 4)), ((3, 4, 5), (2, 3, 2))],
                         ids=lambda s: "x".join(map(str, s)))
def test_fft_candidate_wrap_border_is_circular_convolution(name, x_shape, w_shape):
    """convolve(x, w, border="wrap", origin=o) == circular_convolve(x, roll(w0, -(k//2 + o)))."""
    convolve = registry.get("convolve", name).function()
    rng = rng_for("wrap-candidate", name, x_shape, w_shape)
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal(w_shape)
    w0 = np.zeros(x_shape)
    w0[tuple(slice(0, k) for k in w_shape)] = w
    for origin in origins(w_shape):
        anchor = tuple(k // 2 + o for k, o in zip(w_shape, origin))
        rolled = np.roll(w0, shift=tuple(-a for a in anchor), axis=tuple(range(x.ndim)))
        y = convolve(x, w, border="wrap", padding="same", origin=origin)
        assert y.shape == x.shape and y.dtype == np.float64
        np.testing.assert_allclose(y, circular_convolve(x, rolled), rtol=0, atol=1e-12 * 50,
                                   err_msg=f"origin={origin}")


@pytest.mark.parametrize("name", FFT_CANDIDATES_2D)
def test_fft_candidate_large_case_sampled(name):
    """seed-fft-1k's shape (1000x1000 float32, 15x15) with two borders, sampled oracle."""
    cases = [make_case("correlate", ((1000, 1000), (15, 15)), "float32", border="constant"),
             make_case("correlate", ((1000, 1000), (15, 15)), "float32", border="symmetric",
                       origin=(-3, 2))]
    report = verify_candidates([_available("correlate", name)], cases)
    print(report)
    assert report.passed, str(report)
    assert all(r.checked.endswith("points") for r in report.rows)   # sampled, not whole
    assert max(r.worst for r in report.rows) < 0.1                    # 10x margin under the bound


@pytest.mark.parametrize("name", FFT_CANDIDATES)
def test_fft_candidate_complex_input_is_not_conjugated(name):
    correlate = registry.get("correlate", name).function()
    rng = rng_for("complex-candidate", name)
    x = rng.standard_normal((7, 6)) + 1j * rng.standard_normal((7, 6))
    w = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    y = correlate(x, w, border="edge", padding="same", origin=0)
    assert y.dtype == np.complex128
    expected = ndimage.correlate(x, np.conj(w), mode="nearest")     # scipy conjugates: undo it
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12 * np.abs(x).sum() * np.abs(w).sum())


@pytest.mark.parametrize("name", FFT_CANDIDATES_2D)
def test_fft_candidate_dtypes_float16_and_saturating_uint8(name):
    correlate = _available("correlate", name).function()
    x16 = np.linspace(-2, 2, 30, dtype=np.float16).reshape(5, 6)
    w16 = np.array([[0.5, -1.0, 0.25]], dtype=np.float16)
    y16 = correlate(x16, w16, border="edge")
    assert y16.dtype == np.float16
    np.testing.assert_allclose(y16.astype(np.float64),
                               ndimage.correlate(x16.astype(np.float64), w16.astype(np.float64),
                                                 mode="nearest"), rtol=2e-3, atol=2e-3)
    # 200 everywhere, 3x3 box of ones: 1800 saturates to 255; the negated box to 0
    x8 = np.full((6, 5), 200, dtype=np.uint8)
    box = np.ones((3, 3), dtype=np.float32)
    y8 = correlate(x8, box, border="edge", out_dtype="uint8")
    assert y8.dtype == np.uint8 and np.all(y8 == 255)
    assert np.all(correlate(x8, -box, border="edge", out_dtype="uint8") == 0)
    # a genuine in-range value rounds half to even: (1 + 2) / 2 = 1.5 -> 2, (2 + 3) / 2 -> 2
    y = correlate(np.array([[1, 2, 3]], dtype=np.uint8), np.array([[0.5, 0.5]], dtype=np.float32),
                  border="edge", padding="valid", out_dtype="uint8")
    assert y.tolist() == [[2, 2]]
    # uint8 image with a float64 kernel computes (and returns) float64
    assert correlate(x8, box.astype(np.float64), border="edge").dtype == np.float64


# planted FFT-style bugs: each must be rejected by the verifier under the 'fft' model

def _planted_fft_correlate(start_shift=0, reverse=True):
    """An FFT correlate like fft_scipy, with a crop shift or the kernel reversal removable."""

    def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
        out = result_dtype(x.dtype, w.dtype)
        pads = image_padding(w.shape, padding, origin)
        xp = pad(np.asarray(x, dtype=np.float64), pads, border, cval)
        axes = tuple(range(x.ndim))
        v = np.flip(np.asarray(w, dtype=np.float64)) if reverse else np.asarray(w, dtype=np.float64)
        length = xp.shape                                       # >= P: valid part unaliased
        c = np.fft.irfftn(np.fft.rfftn(xp, s=length, axes=axes) * np.fft.rfftn(v, s=length, axes=axes),
                         s=length, axes=axes)
        for axis, (k, p) in enumerate(zip(w.shape, xp.shape)):
            keep = (np.arange(p - k + 1) + k - 1 + start_shift) % p
            c = np.take(c, keep, axis=axis)
        return round_saturate(c, out_dtype) if out_dtype is not None else c.astype(out)

    return correlate


def _planted_circular_correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0,
                                out_dtype=None):
    """Bug: no padding at all, transform length = the image's shape, so the far edge wraps
    around onto the near one (aliasing) whatever the border asked for."""
    out = result_dtype(x.dtype, w.dtype)
    x = np.asarray(x, dtype=np.float64)
    pads = image_padding(w.shape, "same", origin if padding == "same" else 0)
    w0 = np.zeros(x.shape)
    for j in np.ndindex(*w.shape):                               # w[j] reads x[i + j - anchor]
        w0[tuple((a - lo) % n for a, (lo, _), n in zip(j, pads, x.shape))] += w[j]
    y = np.fft.ifftn(np.fft.fftn(x) * np.conj(np.fft.fftn(w0))).real
    return round_saturate(y, out_dtype) if out_dtype is not None else y.astype(out)


def test_planted_fft_control_passes():
    """The harness for the planted bugs is right when nothing is planted."""
    report = convbench.verify("correlate", _planted_fft_correlate(), error="fft")
    assert report.passed, str(report)


PLANTED_FFT_BUGS = {
    "circular-aliasing": _planted_circular_correlate,
    "kernel-not-reversed": _planted_fft_correlate(reverse=False),
    "crop-one-late": _planted_fft_correlate(start_shift=1),
    "crop-one-early": _planted_fft_correlate(start_shift=-1),
}


@pytest.mark.parametrize("bug", PLANTED_FFT_BUGS)
def test_planted_fft_bug_is_rejected(bug):
    report = convbench.verify("correlate", PLANTED_FFT_BUGS[bug], error="fft")
    assert not report.passed, bug
    assert any(r.status == "FAIL" for r in report.rows), bug      # wrong values, not crashes
    if bug == "circular-aliasing":
        # it is exactly the aliasing bug: right where the border really is 'wrap'
        wrap = [r for r in report.rows if "-wrap-" in r.case and "-full-" not in r.case
                and "-valid-" not in r.case and r.status != "unsupported"]
        assert wrap and all(r.status == "pass" for r in wrap), [(r.case, r.detail) for r in wrap]
