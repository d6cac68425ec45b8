"""Tests of the image form: refimpl/correlate.py (hand-derived goldens, identities, agreement
with scipy.ndimage / scipy.signal / numpy), the shipped candidates, the verifier's planted-bug
catalogue, and the public API convbench.correlate / convbench.convolve (errors included)."""
import functools
import itertools
import re

import numpy as np
import pytest

import convbench
from convbench import arrays, registry, values
from convbench.cases import suite
from convbench.spec import Spec
from convbench.verification import verify_candidates
from refimpl import correlate as ref
from refimpl.geometry import convolve_as_correlate_origin, image_padding
from refimpl.pad import BORDERS, LIBRARY_NAMES

ndi = pytest.importorskip("scipy.ndimage")
ss = pytest.importorskip("scipy.signal")

TIGHT = dict(rtol=1e-12, atol=1e-12)
ORACLES = {"correlate": ref.correlate, "convolve": ref.convolve}
NDIMAGE = {"correlate": ndi.correlate, "convolve": ndi.convolve}


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """Candidates run single-threaded here: these tests check values, not speed, and a
    thread pool on a loaded 2-core machine is several times slower on tiny cases."""
    from candidates import runtime

    monkeypatch.setattr(runtime, "_threads", 1)


def origin_range(k):
    """scipy.ndimage's allowed origins for a kernel axis of length k."""
    return range(-(k // 2), (k - 1) // 2 + 1)


def rand(rng, shape):
    return rng.standard_normal(shape)


def reverse(w):
    return w[(slice(None, None, -1),) * w.ndim]


# ---------------------------------------------------------------------------------------
# Goldens derived by hand
# ---------------------------------------------------------------------------------------

X4 = np.array([1., 2., 3., 4.])
W5 = np.array([1., 0., 0., 0., 2.])   # k = 5, anchor 2


@pytest.mark.parametrize("border, cval, expected", [
    # correlate: y[i] = xp[i-2] + 2 xp[i+2]; xp over positions -2..5 is drawn per border
    # constant 0: 0 0 | 1 2 3 4 | 0 0 -> y0 = 0+2*3, y1 = 0+2*4, y2 = 1+0, y3 = 2+0
    ("constant", 0.0, [6., 8., 1., 2.]),
    # constant 5: 5 5 | 1 2 3 4 | 5 5 -> 5+6, 5+8, 1+10, 2+10
    ("constant", 5.0, [11., 13., 11., 12.]),
    # edge: 1 1 | 1 2 3 4 | 4 4 -> 1+6, 1+8, 1+8, 2+8
    ("edge", 0.0, [7., 9., 9., 10.]),
    # symmetric: 2 1 | 1 2 3 4 | 4 3 -> 2+6, 1+8, 1+8, 2+6
    ("symmetric", 0.0, [8., 9., 9., 8.]),
    # reflect: 3 2 | 1 2 3 4 | 3 2 -> 3+6, 2+8, 1+6, 2+4
    ("reflect", 0.0, [9., 10., 7., 6.]),
    # wrap: 3 4 | 1 2 3 4 | 1 2 -> 3+6, 4+8, 1+2, 2+4
    ("wrap", 0.0, [9., 12., 3., 6.]),
])
def test_golden_correlate_odd_kernel_each_border(border, cval, expected):
    np.testing.assert_array_equal(ref.correlate(X4, W5, border=border, cval=cval), expected)


@pytest.mark.parametrize("border, cval, expected", [
    # convolve: reversed kernel 2 0 0 0 1, same anchor: y[i] = 2 xp[i-2] + xp[i+2]
    ("constant", 0.0, [3., 4., 2., 4.]),     # 0+3, 0+4, 2*1+0, 2*2+0
    ("constant", 5.0, [13., 14., 7., 9.]),   # 10+3, 10+4, 2+5, 4+5
    ("edge", 0.0, [5., 6., 6., 8.]),         # 2+3, 2+4, 2+4, 4+4
    ("symmetric", 0.0, [7., 6., 6., 7.]),    # 4+3, 2+4, 2+4, 4+3
    ("reflect", 0.0, [9., 8., 5., 6.]),      # 6+3, 4+4, 2+3, 4+2
    ("wrap", 0.0, [9., 12., 3., 6.]),        # 6+3, 8+4, 2+1, 4+2
])
def test_golden_convolve_odd_kernel_each_border(border, cval, expected):
    np.testing.assert_array_equal(ref.convolve(X4, W5, border=border, cval=cval), expected)


@pytest.mark.parametrize("border, expected", [
    # correlate with w = [1, 3]: anchor k//2 = 1, pads (1, 0): y[i] = xp[i-1] + 3 x[i]
    ("constant", [3., 7., 11., 15., 19.]),   # xp[-1] = 0: 0+3, 1+6, 2+9, 3+12, 4+15
    ("edge", [4., 7., 11., 15., 19.]),       # xp[-1] = x[0] = 1
    ("symmetric", [4., 7., 11., 15., 19.]),  # xp[-1] = x[0] = 1
    ("reflect", [5., 7., 11., 15., 19.]),    # xp[-1] = x[1] = 2
    ("wrap", [8., 7., 11., 15., 19.]),       # xp[-1] = x[4] = 5
])
def test_golden_correlate_even_kernel(border, expected):
    x = np.array([1., 2., 3., 4., 5.])
    np.testing.assert_array_equal(ref.correlate(x, np.array([1., 3.]), border=border), expected)


@pytest.mark.parametrize("border, last", [
    # convolve with w = [1, 3] on x = 1..6: reversed 3 1, anchor one sample earlier than
    # correlate's (pads (0, 1)): y[i] = 3 x[i] + xp[i+1] = 5, 9, 13, 17, 21, 18 + xp[6]
    ("constant", 18.),       # xp[6] = 0
    ("edge", 24.),           # xp[6] = x[5] = 6
    ("symmetric", 24.),      # xp[6] = x[5] = 6   (scipy's 'reflect' gives ... 21, 24)
    ("reflect", 23.),        # xp[6] = x[4] = 5
    ("wrap", 19.),           # xp[6] = x[0] = 1
])
def test_golden_convolve_even_kernel(border, last):
    x = np.arange(1., 7.)
    y = ref.convolve(x, np.array([1., 3.]), border=border)
    np.testing.assert_array_equal(y, [5., 9., 13., 17., 21., last])


def test_peers_fact_even_convolve_scipy_reflect():
    # scipy.ndimage.convolve(1..6, [1, 3]) with its 'reflect' (our symmetric)
    x, w = np.arange(1., 7.), np.array([1., 3.])
    expected = [5., 9., 13., 17., 21., 24.]
    np.testing.assert_array_equal(ndi.convolve(x, w, mode="reflect"), expected)
    np.testing.assert_array_equal(ref.convolve(x, w, border="symmetric"), expected)
    # ... and that is correlate(x, w[::-1], origin=-1), not correlate(x, w[::-1])
    np.testing.assert_array_equal(ref.correlate(x, w[::-1], border="symmetric", origin=-1), expected)
    assert not np.array_equal(ref.correlate(x, w[::-1], border="symmetric"), expected)


def test_golden_valid_and_full():
    x, w = np.array([1., 2., 3., 4.]), np.array([1., 2., 3.])
    # correlate valid: 1+4+9, 2+6+12
    np.testing.assert_array_equal(ref.correlate(x, w, padding="valid"), [14., 20.])
    # correlate full, xp = 0 0 1 2 3 4 0 0, y[i] = xp[i] + 2 xp[i+1] + 3 xp[i+2]
    np.testing.assert_array_equal(ref.correlate(x, w, padding="full"), [3., 8., 14., 20., 11., 4.])
    # full with edge: xp = 1 1 1 2 3 4 4 4 -> 1+2+3, 1+2+6, 14, 20, 3+8+12, 4+8+12
    np.testing.assert_array_equal(ref.correlate(x, w, padding="full", border="edge"),
                                  [6., 9., 14., 20., 23., 24.])
    # convolve valid: reversed 3 2 1: 3+4+3, 6+6+4
    np.testing.assert_array_equal(ref.convolve(x, w, padding="valid"), [10., 16.])
    # convolve full: y[i] = sum_j w[j] x[i-j]: 1, 2+2, 3+4+3, 4+6+6, 8+9, 12
    np.testing.assert_array_equal(ref.convolve(x, w, padding="full"), [1., 4., 10., 16., 17., 12.])


def test_golden_origin():
    x, w = np.array([1., 2., 3., 4.]), np.array([1., 2., 3.])
    # origin 1: anchor 2, pads (2, 0): y[i] = xp[i-2] + 2 xp[i-1] + 3 x[i]
    np.testing.assert_array_equal(ref.correlate(x, w, origin=1), [3., 8., 14., 20.])
    # origin -1: anchor 0, pads (0, 2): y[i] = x[i] + 2 xp[i+1] + 3 xp[i+2]
    np.testing.assert_array_equal(ref.correlate(x, w, origin=-1), [14., 20., 11., 4.])
    # convolve origin 1 (odd kernel): correlate with 3 2 1 at origin -1:
    # y[i] = 3 x[i] + 2 xp[i+1] + xp[i+2] = 3+4+3, 6+6+4, 9+8+0, 12+0+0
    np.testing.assert_array_equal(ref.convolve(x, w, origin=1), [10., 16., 17., 12.])
    # convolve even w = [1, 3], origin -1: correlate origin -(-1) - 1 = 0 with 3 1,
    # pads (1, 0): y[i] = 3 xp[i-1] + x[i] = 0+1, 3+2, 6+3, 9+4, 12+5
    np.testing.assert_array_equal(ref.convolve(np.arange(1., 6.), np.array([1., 3.]), origin=-1),
                                  [1., 5., 9., 13., 17.])


@pytest.mark.parametrize("border, cval, expected", [
    # x = 1 2 3, w = 1 0 0 0 0 0 10 (k = 7 > n = 3, anchor 3): y[i] = xp[i-3] + 10 xp[i+3]
    ("constant", 1.0, [11., 11., 11.]),     # 1 + 10*1 everywhere
    ("edge", 0.0, [31., 31., 31.]),         # 1 1 1 | 1 2 3 | 3 3 3: 1 + 30
    ("symmetric", 0.0, [33., 22., 11.]),    # 3 2 1 | 1 2 3 | 3 2 1: 3+30, 2+20, 1+10
    ("reflect", 0.0, [22., 13., 22.]),      # 2 3 2 | 1 2 3 | 2 1 2: 2+20, 3+10, 2+20
    ("wrap", 0.0, [11., 22., 33.]),         # 1 2 3 | 1 2 3 | 1 2 3: 1+10, 2+20, 3+30
])
def test_golden_kernel_longer_than_image(border, cval, expected):
    w = np.array([1., 0., 0., 0., 0., 0., 10.])
    np.testing.assert_array_equal(ref.correlate(np.array([1., 2., 3.]), w, border=border, cval=cval),
                                  expected)


def test_golden_2d():
    x = np.array([[1., 2.], [3., 4.]])
    w = np.array([[1., 2.], [3., 4.]])
    # correlate 'same', anchor (1, 1), pads ((1, 0), (1, 0)):
    # y[i,j] = 1 xp[i-1,j-1] + 2 xp[i-1,j] + 3 xp[i,j-1] + 4 x[i,j]
    # constant: y00 = 4*1; y01 = 3*1 + 4*2; y10 = 2*1 + 4*3; y11 = 1+4+9+16
    np.testing.assert_array_equal(ref.correlate(x, w), [[4., 11.], [14., 30.]])
    # edge (the missing row/column repeat the first): y00 = 1+2+3+4; y01 = 1*1+2*2+3*1+4*2;
    # y10 = 1*1+2*1+3*3+4*3; y11 = 30
    np.testing.assert_array_equal(ref.correlate(x, w, border="edge"), [[10., 16.], [24., 30.]])
    # convolve full: y[i,j] = sum w[a,b] x[i-a,j-b]
    # row 0: 1, 2+2, 4; row 1: 3+3, 4+6+6+4, 8+8; row 2: 9, 12+12, 16
    np.testing.assert_array_equal(ref.convolve(x, w, padding="full"),
                                  [[1., 4., 4.], [6., 20., 16.], [9., 24., 16.]])
    # convolve 'same' (even kernel: pads ((0, 1), (0, 1)), reversed 4 3 / 2 1):
    # y[i,j] = 4 x[i,j] + 3 xp[i,j+1] + 2 xp[i+1,j] + xp[i+1,j+1] = the full result's [1:, 1:]
    np.testing.assert_array_equal(ref.convolve(x, w), [[20., 16.], [24., 16.]])


# ---------------------------------------------------------------------------------------
# Identities
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("border", BORDERS)
def test_convolve_is_correlate_of_reversed_kernel_at_the_anchor_rule(border):
    rng = np.random.default_rng(1)
    for x_shape, w_shape in (((7,), (1,)), ((7,), (4,)), ((6,), (5,)), ((3,), (6,)),
                             ((5, 4), (2, 3)), ((4, 5, 3), (3, 2, 2))):
        x, w = rand(rng, x_shape), rand(rng, w_shape)
        for origin in itertools.product(*[origin_range(k) for k in w_shape]):
            y = ref.convolve(x, w, border=border, cval=0.5, origin=origin)
            o = convolve_as_correlate_origin(w_shape, "same", origin)
            # the anchor rule: odd axis origin negated, even axis one more
            assert o == tuple(-oo - (k % 2 == 0) for oo, k in zip(origin, w_shape))
            np.testing.assert_allclose(
                y, ref.correlate(x, reverse(w), border=border, cval=0.5, origin=o), **TIGHT)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_delta_kernel_is_identity(border, op):
    rng = np.random.default_rng(2)
    x = rand(rng, (5, 4))
    for kh, kw in ((1, 1), (3, 3), (2, 4), (5, 2), (7, 6)):
        delta = np.zeros((kh, kw))
        delta[kh // 2, kw // 2] = 1.0   # the anchor of both ops
        np.testing.assert_array_equal(ORACLES[op](x, delta, border=border, cval=9.0), x)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_linearity(border, op):
    rng = np.random.default_rng(3)
    f = functools.partial(ORACLES[op], border=border, origin=(0, -1))
    x1, x2 = rand(rng, (5, 6)), rand(rng, (5, 6))
    w1, w2 = rand(rng, (3, 4)), rand(rng, (3, 4))
    a, b = 1.5, -0.25
    # in x (cval 0 is the zero of the padded signal)
    np.testing.assert_allclose(f(a * x1 + b * x2, w1), a * f(x1, w1) + b * f(x2, w1), **TIGHT)
    # in w, any cval
    np.testing.assert_allclose(f(x1, a * w1 + b * w2, cval=3.0),
                               a * f(x1, w1, cval=3.0) + b * f(x1, w2, cval=3.0), **TIGHT)


@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_shift_equivariance_under_wrap(op):
    rng = np.random.default_rng(4)
    x, w = rand(rng, (6, 5)), rand(rng, (4, 3))
    y = ORACLES[op](x, w, border="wrap", origin=(1, -1))
    for shift, axis in ((1, 0), (-2, 1), (7, 0), ((2, 3), (0, 1))):
        np.testing.assert_allclose(
            ORACLES[op](np.roll(x, shift, axis), w, border="wrap", origin=(1, -1)),
            np.roll(y, shift, axis), **TIGHT)


def test_full_and_valid_equal_numpy_1d():
    rng = np.random.default_rng(5)
    for n, k in ((1, 1), (5, 3), (6, 4), (3, 7), (8, 8)):
        x, w = rand(rng, (n,)), rand(rng, (k,))
        np.testing.assert_allclose(ref.correlate(x, w, padding="full"), np.correlate(x, w, "full"),
                                   **TIGHT)
        np.testing.assert_allclose(ref.convolve(x, w, padding="full"), np.convolve(x, w, "full"),
                                   **TIGHT)
        if k <= n:
            np.testing.assert_allclose(ref.correlate(x, w, padding="valid"),
                                       np.correlate(x, w, "valid"), **TIGHT)
            np.testing.assert_allclose(ref.convolve(x, w, padding="valid"),
                                       np.convolve(x, w, "valid"), **TIGHT)


# ---------------------------------------------------------------------------------------
# Agreement with scipy.ndimage and scipy.signal
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_agrees_with_scipy_ndimage_1d(op, border):
    rng = np.random.default_rng(6)
    mode = LIBRARY_NAMES["scipy.ndimage"][border]
    for n in (1, 2, 3, 5, 8):
        x = rand(rng, (n,))
        for k in range(1, 8):                       # even, odd, longer than the image
            w = rand(rng, (k,))
            cval = float(rng.standard_normal())
            for origin in origin_range(k):          # the whole allowed range
                np.testing.assert_allclose(
                    ORACLES[op](x, w, border=border, cval=cval, origin=origin),
                    NDIMAGE[op](x, w, mode=mode, cval=cval, origin=origin),
                    err_msg=f"n={n} k={k} origin={origin}", **TIGHT)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_agrees_with_scipy_ndimage_2d(op, border):
    rng = np.random.default_rng(7)
    mode = LIBRARY_NAMES["scipy.ndimage"][border]
    for x_shape in ((1, 1), (4, 3), (2, 5)):
        x = rand(rng, x_shape)
        for kernel in ((1, 1), (2, 2), (3, 2), (1, 6), (7, 4), (5, 5)):
            w = rand(rng, kernel)
            cval = float(rng.standard_normal())
            ends = [sorted({min(origin_range(k)), 0, max(origin_range(k))}) for k in kernel]
            for origin in itertools.product(*ends):
                np.testing.assert_allclose(
                    ORACLES[op](x, w, border=border, cval=cval, origin=origin),
                    NDIMAGE[op](x, w, mode=mode, cval=cval, origin=origin),
                    err_msg=f"x{x_shape} w{kernel} origin={origin}", **TIGHT)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_agrees_with_scipy_ndimage_3d_4d(op, border):
    rng = np.random.default_rng(8)
    mode = LIBRARY_NAMES["scipy.ndimage"][border]
    for x_shape, w_shape, origin in (((3, 4, 2), (2, 3, 3), (-1, 1, 0)),
                                     ((2, 3, 3), (3, 2, 4), (1, 0, -2)),
                                     ((2, 3, 2, 3), (2, 2, 3, 1), (0, -1, 1, 0)),
                                     ((1, 2, 2, 2), (3, 1, 2, 2), 0)):
        x, w = rand(rng, x_shape), rand(rng, w_shape)
        np.testing.assert_allclose(
            ORACLES[op](x, w, border=border, cval=-1.25, origin=origin),
            NDIMAGE[op](x, w, mode=mode, cval=-1.25, origin=origin), **TIGHT)


SIGNAL = {"correlate": ss.correlate, "convolve": ss.convolve}


@pytest.mark.parametrize("padding", ["valid", "full"])
@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_valid_full_agree_with_scipy_signal(op, padding):
    rng = np.random.default_rng(9)
    for x_shape, w_shape in (((6,), (3,)), ((7,), (4,)), ((3,), (5,)), ((5, 4), (2, 3)),
                             ((4, 4), (4, 4)), ((2, 3), (3, 5)), ((3, 4, 3), (2, 2, 3))):
        if padding == "valid" and any(k > n for n, k in zip(x_shape, w_shape)):
            continue
        x, w = rand(rng, x_shape), rand(rng, w_shape)
        expected = SIGNAL[op](x, w, mode=padding, method="direct")
        np.testing.assert_allclose(ORACLES[op](x, w, padding=padding), expected, **TIGHT)
        if padding == "full":
            # a border other than constant: the padded signal (numpy.pad) in 'valid'
            for border in ("edge", "symmetric", "reflect", "wrap"):
                xp = np.pad(x, [(k - 1, k - 1) for k in w_shape], mode=border)
                np.testing.assert_allclose(ORACLES[op](x, w, padding="full", border=border),
                                           SIGNAL[op](xp, w, mode="valid", method="direct"),
                                           err_msg=border, **TIGHT)


# ---------------------------------------------------------------------------------------
# Integer images and dtypes
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16"])
@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_integer_images_never_wrap(op, dtype):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(10)
    x = rng.integers(info.min, info.max, size=(6, 5), endpoint=True).astype(dtype)
    x[0, 0], x[1, 1] = info.max, info.min
    for w in (np.ones((3, 3), dtype=dtype), np.array([[1, -2], [3, 1]], dtype=np.int16),
              rand(rng, (3, 2))):
        for border in BORDERS:
            y = ORACLES[op](x, w, border=border)
            assert y.dtype == np.float64
            wide = NDIMAGE[op](x.astype(np.float64), w.astype(np.float64),
                               mode=LIBRARY_NAMES["scipy.ndimage"][border])
            np.testing.assert_allclose(y, wide, **TIGHT)
    # the sums really leave the dtype's range (so a wrap would show)
    assert ORACLES[op](x, np.ones((3, 3), dtype=dtype)).max() > info.max


def test_out_dtype_uint8_saturates_where_scipy_wraps():
    x = np.full((3, 3), 200, dtype=np.uint8)
    w = np.ones((3, 3), dtype=np.uint8)
    # centre: 9 * 200 = 1800; corner: 4 * 200 = 800; edge: 6 * 200 = 1200 -> all > 255
    y = ref.correlate(x, w, out_dtype="uint8")
    assert y.dtype == np.uint8
    np.testing.assert_array_equal(y, np.full((3, 3), 255))
    np.testing.assert_array_equal(ref.correlate(x, w), [[800., 1200., 800.], [1200., 1800., 1200.],
                                                        [800., 1200., 800.]])
    # scipy.signal wraps modulo 256: 1800 - 7*256 = 8
    assert ss.convolve2d(x, w, mode="valid")[0, 0] == 8
    np.testing.assert_array_equal(ref.convolve(x, w, padding="valid", out_dtype="uint8"), [[255]])


def test_out_dtype_rounds_half_to_even_and_saturates():
    x = np.array([1, 3, 5, 7], dtype=np.uint8)
    w = np.array([0.5])
    # 0.5, 1.5, 2.5, 3.5 -> half to even: 0, 2, 2, 4 (half up would give 1 2 3 4)
    np.testing.assert_array_equal(ref.correlate(x, w, out_dtype="uint8"), [0, 2, 2, 4])
    # int16: w = [1, 1], pads (1, 0): y = 0 + 30000, 30000 + 30000 -> 30000, 32767
    xi = np.array([30000, 30000], dtype=np.int16)
    np.testing.assert_array_equal(ref.correlate(xi, np.array([1., 1.]), out_dtype="int16"),
                                  [30000, 32767])
    np.testing.assert_array_equal(ref.correlate(xi, np.array([-1., -1.]), out_dtype="int16"),
                                  [-30000, -32768])
    # negative results saturate at 0 for an unsigned out_dtype
    np.testing.assert_array_equal(ref.correlate(x, np.array([-1.]), out_dtype="uint8"), [0, 0, 0, 0])


PEERS_U8 = np.array([0, 10, 200, 250, 5], dtype=np.uint8)
# [1, -2, 1] with edge (scipy 'nearest'): xp = 0 | 0 10 200 250 5 | 5
#   y0 = 0 - 0 + 10 = 10;       y1 = 0 - 20 + 200 = 180;    y2 = 10 - 400 + 250 = -140
#   y3 = 200 - 500 + 5 = -295;  y4 = 250 - 10 + 5 = 245
PEERS_TRUE = [10., 180., -140., -295., 245.]


def test_peers_uint8_example():
    w = np.array([1., -2., 1.])
    np.testing.assert_array_equal(ref.correlate(PEERS_U8, w, border="edge"), PEERS_TRUE)
    np.testing.assert_array_equal(ref.correlate(PEERS_U8, w, border="nearest", out_dtype="uint8"),
                                  [10, 180, 0, 0, 245])
    # scipy wraps: -140 -> 116, -295 -> 217
    np.testing.assert_array_equal(ndi.correlate1d(PEERS_U8, [1, -2, 1], mode="nearest"),
                                  [10, 180, 116, 217, 245])


def test_float16_input_gives_float64_oracle():
    x = np.array([1., 2., 3.], dtype=np.float16)
    y = ref.correlate(x, np.array([1., 1.], dtype=np.float16))
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, [1., 3., 5.])   # pads (1, 0): 0+1, 1+2, 2+3


# ---------------------------------------------------------------------------------------
# The pointwise oracle
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("border", BORDERS)
def test_correlate_at_equals_whole_oracle(border):
    rng = np.random.default_rng(11)
    for x_shape, w_shape, padding, origin in (((5,), (3,), "same", 1), ((4,), (6,), "same", -3),
                                              ((4, 3), (2, 5), "same", (0, -2)),
                                              ((4, 3), (2, 2), "full", 0),
                                              ((5, 4), (3, 2), "valid", 0),
                                              ((3, 2, 3), (2, 3, 2), "same", (-1, 1, -1))):
        x, w = rand(rng, x_shape), rand(rng, w_shape)
        for convolve in (False, True):
            fn = ref.convolve if convolve else ref.correlate
            kw = dict(border=border, cval=2.5, padding=padding, origin=origin)
            whole = fn(x, w, **kw)
            for index in np.ndindex(*whole.shape):
                got = ref.correlate_at(x, w, index, convolve=convolve, **kw)
                assert isinstance(got, float)
                assert got == pytest.approx(whole[index], rel=1e-12, abs=1e-12), index


def test_correlate_at_on_a_huge_broadcast_image():
    # 20000 x 20000 float64 would be 3.2 GB; the view holds 160 kB
    x = np.broadcast_to(np.arange(20000.)[:, None], (20000, 20000))
    w = np.ones((3, 3))
    # symmetric: rows -1 -> 0 and 20000 -> 19999; each row sum is 3 * row value
    assert ref.correlate_at(x, w, (0, 0), border="symmetric") == 3 * (0 + 0 + 1)
    assert ref.correlate_at(x, w, (19999, 5), border="symmetric") == 3 * (19998 + 19999 + 19999)
    assert ref.correlate_at(x, w, (19999, 19999), border="constant") == 2 * (19998 + 19999)
    assert ref.correlate_at(x, w, (10, 0), border="wrap", convolve=True) == 3 * (9 + 10 + 11)


# ---------------------------------------------------------------------------------------
# Every shipped candidate passes the small suite
# ---------------------------------------------------------------------------------------

def candidate_names(op):
    return [c.name for c in registry.candidates(op)]


@pytest.mark.parametrize("op", ["correlate", "convolve"])
@pytest.mark.parametrize("name", candidate_names("correlate"))
def test_candidate_passes_small_suite(op, name):
    candidate = registry.get(op, name)
    reason = candidate.unavailable()
    if reason:
        pytest.skip(reason)
    report = verify_candidates([candidate], suite("small", op))
    assert report.passed, str(report)
    for row in report.rows:   # a case a candidate does not run says why
        assert row.status == "pass" or (row.status == "unsupported" and row.detail), row


# ---------------------------------------------------------------------------------------
# The planted-bug catalogue: plausible user implementations, one mistake each
# ---------------------------------------------------------------------------------------

SCIPY_MODES = {"constant": "constant", "edge": "nearest", "symmetric": "reflect",
               "reflect": "mirror", "wrap": "wrap"}


def user_result_dtype(x, w):
    """The documented default result type: numpy's for floats, else at least float32."""
    floats = [a.dtype for a in (x, w) if a.dtype.kind == "f"]
    if len(floats) == 2:
        return np.result_type(*floats)
    return np.result_type(np.float32, *floats)


def user_filter(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None,
                convolve=False, bug=None):
    """What a careful user writes on scipy.ndimage; ``bug`` plants one mistake."""
    out = user_result_dtype(x, w)
    exact = x.dtype.kind in "iu" and w.dtype.kind in "iu" and out_dtype is not None \
        and np.dtype(out_dtype).kind in "iu"
    special = exact or not (np.isfinite(x).all() and np.isfinite(w).all())
    x, w = (x.astype(object), w.astype(object)) if exact else (x.astype(np.float64), w.astype(np.float64))
    origins = np.broadcast_to(np.asarray(origin), (w.ndim,)).astype(int)
    modes = dict(SCIPY_MODES)
    if bug == "nan_to_zero" and not exact:
        x = np.where(np.isnan(x), 0.0, x)
    if bug == "cval_ignored":
        cval = 0.0
    if bug == "transposed_kernel":
        w = w.T
    if bug == "reflect_symmetric_swapped":            # scipy's 'reflect' passed for ours
        modes.update(symmetric="mirror", reflect="reflect")
    if bug == "edge_constant_swapped":
        modes.update(edge="constant", constant="nearest")
    if bug == "origin_sign":
        origins = -origins
    if convolve and bug != "kernel_not_flipped":
        w = reverse(w)
        even = np.array([k % 2 == 0 for k in w.shape])
        origins = -origins - (even if bug != "anchor_even" else 0)
    if bug == "float16_accumulation" and out == np.float16:
        pads = image_padding(w.shape, padding, tuple(int(o) for o in origins))
        xp = np.pad(x, pads, mode=border, **({"constant_values": cval} if border == "constant" else {}))
        shape = tuple(m - k + 1 for m, k in zip(xp.shape, w.shape))
        y = np.zeros(shape, dtype=np.float16)
        xp, w16 = xp.astype(np.float16), w.astype(np.float16)
        for j in np.ndindex(*w.shape):                # every partial sum rounded to float16
            y += w16[j] * xp[tuple(slice(a, a + n) for a, n in zip(j, shape))]
    elif special:
        # a careful user sums every tap (scipy.ndimage skips zero taps, which loses 0 * Inf)
        # and keeps integer sums exact
        pads = image_padding(w.shape, padding, tuple(int(o) for o in origins))
        numpy_border = {v: k for k, v in SCIPY_MODES.items()}[modes[border]]
        xp = np.pad(x, pads, mode=numpy_border,
                    **({"constant_values": cval} if numpy_border == "constant" else {}))
        windows = np.lib.stride_tricks.sliding_window_view(xp, w.shape)
        with np.errstate(invalid="ignore"):
            y = (windows * w).sum(axis=tuple(range(-w.ndim, 0)))
    elif padding == "same":
        y = ndi.correlate(x, w, mode=modes[border], cval=cval, origin=tuple(int(o) for o in origins))
    else:
        extra = [(k - 1, k - 1) if padding == "full" else (0, 0) for k in w.shape]
        xp = np.pad(x, extra, mode=border, **({"constant_values": cval} if border == "constant" else {}))
        y = ss.correlate(xp, w, mode="valid", method="direct")
        if bug == "output_size":                      # n - k instead of n - k + 1
            y = y[tuple(slice(0, n - 1) for n in y.shape)]
    if bug == "last_row_dropped":
        y = y.copy()
        y[-1] = 0
    if out_dtype is not None:
        out_dtype = np.dtype(out_dtype)
        if out_dtype.kind in "iu":
            if bug == "wrap_modulo":                  # scipy's uint8 output: modulo 2**bits
                return np.rint(y.astype(np.float64)).astype(np.int64).astype(out_dtype)
            info = np.iinfo(out_dtype)
            return np.clip(y if exact else np.rint(y), info.min, info.max).astype(out_dtype)
        return y.astype(out_dtype)
    return y.astype(out)


def user(op, bug=None):
    fn = functools.partial(user_filter, convolve=op == "convolve", bug=bug)
    fn.__name__ = f"user_{op}_{bug or 'correct'}"
    return fn


SYMMETRIC_KERNELS = {"box", "sharpen", "edge"}


# bug -> (op, which cases may fail, a regex some failing row's detail must match)
PLANTED = {
    "kernel_not_flipped": ("convolve", lambda c: c.recipe(1) not in SYMMETRIC_KERNELS,
                           r"error .* > bound"),
    "anchor_even": ("convolve", lambda c: any(k % 2 == 0 for k in c.spec.shapes[1]),
                    r"error .* > bound"),
    "reflect_symmetric_swapped": ("correlate",
                                  lambda c: c.spec.kwargs["border"] in ("symmetric", "reflect"),
                                  r"error .* > bound"),
    "edge_constant_swapped": ("correlate", lambda c: c.spec.kwargs["border"] in ("edge", "constant"),
                              r"error .* > bound"),
    "last_row_dropped": ("correlate", lambda c: True, r"at \("),
    "float16_accumulation": ("correlate", lambda c: "float16" in c.spec.dtypes,
                             r"error .* > bound"),
    "transposed_kernel": ("correlate", lambda c: len(c.spec.shapes[1]) >= 2, r"."),
    "output_size": ("correlate", lambda c: c.spec.kwargs["padding"] != "same", r"^shape \("),
    "wrap_modulo": ("correlate", lambda c: c.spec.kwargs["out_dtype"] is not None, r"^off by \d+"),
    "cval_ignored": ("correlate", lambda c: c.spec.kwargs["cval"] != 0.0, r"error .* > bound"),
    "origin_sign": ("correlate", lambda c: c.spec.kwargs["origin"] != 0, r"."),
    "nan_to_zero": ("correlate", lambda c: c.nonfinite, r"NaN placement differs"),
}


@functools.lru_cache(maxsize=None)
def small_cases(op):
    return {c.id: c for c in suite("small", op)}


@pytest.mark.parametrize("bug", sorted(PLANTED))
def test_planted_bug_is_rejected(bug):
    op, may_fail, detail = PLANTED[bug]
    cases = small_cases(op)
    report = convbench.verify(op, user(op, bug))
    assert not report.passed
    failing = report.failures
    assert failing, bug
    for row in failing:
        assert may_fail(cases[row.case]), f"{bug} failed an unrelated case: {row}"
    assert any(re.search(detail, row.detail) for row in failing), [r.detail for r in failing]
    if bug == "last_row_dropped":
        for row in failing:   # the worst point reported is in the last row
            first = int(re.search(r"at \((\d+)", row.detail).group(1))
            assert first == cases[row.case].spec.output_shape()[0] - 1, row
    if bug == "output_size":
        assert len(failing) == sum(may_fail(c) for c in cases.values())
    if bug == "float16_accumulation":
        assert any("w7x7" in row.case for row in failing), [r.case for r in failing]


@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_correct_user_function_passes(op):
    report = convbench.verify(op, user(op))
    assert report.passed, str(report)
    assert report.counts()["pass"] == len(small_cases(op))


def test_raising_function_gives_error_rows_and_the_run_goes_on():
    calls = []

    def broken(x, w, **kwargs):
        calls.append(x.shape)
        raise RuntimeError("kaboom")

    report = convbench.verify("correlate", broken)
    assert not report.passed
    assert len(report.rows) == len(calls) == len(small_cases("correlate"))
    assert all(r.status == "error" and "RuntimeError: kaboom" in r.detail for r in report.rows)


def test_wrong_shape_fails():
    def extra_axis(x, w, **kwargs):
        return user("correlate")(x, w, **kwargs)[None]

    report = convbench.verify("correlate", extra_axis)
    assert not report.passed
    assert all(r.status == "FAIL" and r.detail.startswith("shape") for r in report.rows)


# ---------------------------------------------------------------------------------------
# Public API: bad input
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["correlate", "convolve"])
@pytest.mark.parametrize("x, w, kwargs, error, match", [
    (np.ones((3, 3)), np.ones(3), {}, ValueError, r"x and w must have the same rank.*x.ndim=2.*w.ndim=1"),
    (np.ones(3), np.ones(()), {}, ValueError, r"w must have at least one axis"),
    (np.ones(3), np.ones(2), {"border": "nope"}, ValueError,
     r"unknown border 'nope'; accepted: constant, edge, symmetric, reflect, wrap"),
    (np.ones(3), np.ones(5), {"padding": "valid"}, ValueError,
     r"kernel axis 0 \(length 5\) is larger than the image axis \(length 3\).*'valid'"),
    (np.ones((0, 3)), np.ones((1, 1)), {}, ValueError, r"x is empty"),
    (np.ones(3), np.ones(0), {}, ValueError, r"w is empty"),
    (np.ones(3, dtype=bool), np.ones(2), {}, TypeError, r"x has unsupported dtype bool; accepted"),
    (np.array([1, "a"], dtype=object), np.ones(2), {}, TypeError, r"x must hold numbers, got dtype object"),
    (np.ones(3), np.ones(2, dtype=bool), {}, TypeError, r"w has unsupported dtype bool"),
    (np.ones(3), np.ones(2), {"cval": np.nan}, ValueError, r"cval must be a finite real number"),
    (np.ones(3), np.ones(2), {"cval": np.inf}, ValueError, r"cval must be a finite"),
    (np.ones(5), np.ones(3), {"origin": 2}, ValueError, r"origin 2 is outside \[-1, 1\]"),
    (np.ones(5), np.ones(4), {"origin": -3}, ValueError, r"origin -3 is outside \[-2, 1\]"),
    (np.ones((5, 5)), np.ones((3, 3)), {"origin": (0, 1, 0)}, ValueError, r"origin must have 2 entries"),
    (np.ones(5), np.ones(3), {"padding": "valid", "origin": 1}, ValueError,
     r"origin applies only to padding='same'"),
    (np.ones(5), np.ones(3), {"padding": "circular"}, ValueError, r"padding must be one of"),
    (np.ones(5), np.ones(3), {"out_dtype": "complex64"}, TypeError, r"out_dtype"),
    (np.ones(5), np.ones(3), {"algorithm": "nope"}, ValueError,
     r"unknown candidate\(s\) \['nope'\]; accepted: .*shift_add_numpy"),
])
def test_api_bad_input(no_work, op, x, w, kwargs, error, match):
    with pytest.raises(error, match=match):
        getattr(convbench, op)(x, w, **kwargs)


# Origin and cval checks of ImageFilter.normalize: length, range and type named.


@pytest.mark.parametrize("origin", [(0, 0, 0), (1, 1, 1)])
def test_api_origin_of_wrong_length_all_equal(no_work, origin):
    with pytest.raises(ValueError, match="origin must have 2 entries"):
        convbench.correlate(np.ones((5, 5)), np.ones((3, 3)), origin=origin)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"origin": 0.5}, TypeError, "origin must be an int"),
    ({"cval": "a"}, TypeError, "cval must be a finite real number"),
    ({"cval": None}, TypeError, "cval must be a finite real number"),
])
def test_api_bad_origin_or_cval_type_is_named(no_work, kwargs, error, match):
    with pytest.raises(error, match=match):
        convbench.correlate(np.ones(5), np.ones(3), **kwargs)


def test_api_numpy_integer_origin():
    # origin 1 (anchor 2), pads (2, 0), ones kernel: 0+0+1, 0+1+2, 1+2+3, 2+3+4
    y = convbench.correlate(np.arange(1., 5.), np.ones(3), origin=np.int64(1))
    np.testing.assert_array_equal(y, [1., 3., 6., 9.])


@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_api_mixed_array_libraries(no_work, op):
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="x is numpy, w is torch"):
        getattr(convbench, op)(np.ones(4), torch.ones(2))


@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_api_algorithm_that_cannot_do_the_case(no_work, op):
    pytest.importorskip("cv2")
    with pytest.raises(ValueError, match=r"algorithm='filter2d_opencv' cannot run this call: .*1-D and 2-D"):
        getattr(convbench, op)(np.ones((3, 3, 3, 3)), np.ones((2, 2, 2, 2)), algorithm="filter2d_opencv")


# ---------------------------------------------------------------------------------------
# Public API: results
# ---------------------------------------------------------------------------------------

def runnable(op, x, w, **kwargs):
    """The candidates that can run this call here (available, supporting it, and given
    these values: convbench.values)."""
    spec = Spec.make(op, (np.shape(x), np.shape(w)),
                     (arrays.dtype_name(x), arrays.dtype_name(w)), **kwargs)
    found = values.facts(spec, (np.asarray(x), np.asarray(w)))
    return [c.name for c in registry.candidates(op)
            if c.unavailable() is None and c.supports(spec) is None
            and values.ineligible(c, spec, found) is None]


@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_api_agrees_with_scipy_ndimage(op):
    rng = np.random.default_rng(12)
    for x_shape, w_shape, origin in (((9,), (4,), -1), ((8, 7), (3, 3), 0), ((6, 9), (2, 4), (-1, 1)),
                                     ((7, 8), (5, 6), 0), ((4, 5, 3), (2, 3, 2), 0)):
        x, w = rand(rng, x_shape), rand(rng, w_shape)
        for border in BORDERS:
            mode = LIBRARY_NAMES["scipy.ndimage"][border]
            expected = NDIMAGE[op](x, w, mode=mode, cval=0.75, origin=origin)
            kw = dict(border=border, cval=0.75, origin=origin)
            y = getattr(convbench, op)(x, w, **kw)
            assert isinstance(y, np.ndarray) and y.dtype == np.float64
            np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-10)
            for name in runnable(op, x, w, **kw):
                np.testing.assert_allclose(getattr(convbench, op)(x, w, algorithm=name, **kw),
                                           expected, rtol=1e-10, atol=1e-10,
                                           err_msg=f"{name} {x_shape} {w_shape} {border}")


@pytest.mark.parametrize("op", ["correlate", "convolve"])
@pytest.mark.parametrize("padding", ["valid", "full"])
def test_api_valid_full(op, padding):
    rng = np.random.default_rng(13)
    x, w = rand(rng, (9, 8)), rand(rng, (3, 4))
    expected = SIGNAL[op](x, w, mode=padding, method="direct")
    np.testing.assert_allclose(getattr(convbench, op)(x, w, padding=padding), expected,
                               rtol=1e-10, atol=1e-10)
    for name in runnable(op, x, w, padding=padding):
        np.testing.assert_allclose(getattr(convbench, op)(x, w, padding=padding, algorithm=name),
                                   expected, rtol=1e-10, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_api_torch_in_torch_out(op):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    x, w = rand(rng, (7, 6)), rand(rng, (3, 2))
    expected = NDIMAGE[op](x, w, mode="mirror")
    xt, wt = torch.from_numpy(x), torch.from_numpy(w)
    for algorithm in [None] + runnable(op, xt, wt, border="reflect"):
        y = getattr(convbench, op)(xt, wt, border="reflect",
                                   algorithm=algorithm)
        assert isinstance(y, torch.Tensor), algorithm
        assert y.dtype == torch.float64 and y.device.type == "cpu"
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-10, err_msg=str(algorithm))


@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_api_integer_images(op):
    x = np.full((3, 3), 200, dtype=np.uint8)
    w = np.ones((3, 3), dtype=np.uint8)
    names = set(runnable(op, x, w, out_dtype="uint8"))
    names &= set(runnable(op, PEERS_U8, np.ones(3), border="edge", out_dtype="uint8"))
    for algorithm in [None] + sorted(names):
        y = getattr(convbench, op)(x, w, algorithm=algorithm)
        assert y.dtype.kind == "f", algorithm         # default: a floating result
        assert y[1, 1] == pytest.approx(1800.0, rel=1e-6), algorithm   # never wrapped to 8
        y8 = getattr(convbench, op)(x, w, out_dtype="uint8", algorithm=algorithm)
        assert y8.dtype == np.uint8
        np.testing.assert_array_equal(y8, np.full((3, 3), 255), err_msg=str(algorithm))
        peers = getattr(convbench, op)(PEERS_U8, np.array([1., -2., 1.]), border="edge",
                                       algorithm=algorithm)
        np.testing.assert_allclose(peers, PEERS_TRUE, err_msg=str(algorithm))
        peers8 = getattr(convbench, op)(PEERS_U8, np.array([1., -2., 1.]), border="edge",
                                        out_dtype="uint8", algorithm=algorithm)
        np.testing.assert_array_equal(peers8, [10, 180, 0, 0, 245], err_msg=str(algorithm))


def test_api_float16():
    rng = np.random.default_rng(15)
    x = rand(rng, (6, 6)).astype(np.float16)
    w = rand(rng, (3, 3)).astype(np.float16)
    y = convbench.correlate(x, w, border="edge")
    assert y.dtype == np.float16
    expected = ndi.correlate(x.astype(np.float64), w.astype(np.float64), mode="nearest")
    np.testing.assert_allclose(y.astype(np.float64), expected, rtol=0, atol=0.02)
