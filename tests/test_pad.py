"""Tests of refimpl/pad.py: the oracle ``pad`` against numpy.pad, the alias table, and the
per-library translation table LIBRARY_NAMES checked against each library itself (scipy.ndimage,
scipy.signal, torch, OpenCV): the table is never trusted, the library is asked."""
import itertools

import numpy as np
import pytest

from refimpl.pad import (ALIASES, BORDERS, LIBRARY_NAMES, canonical_border, library_border, pad,
                         source_index)

CVAL = 7.5


def numpy_pad(x, widths, border, cval=CVAL):
    kwargs = {"constant_values": cval} if border == "constant" else {}
    return np.pad(np.asarray(x, dtype=np.float64), widths, mode=border, **kwargs)


def signal(shape, seed=0):
    """Distinct values, so any wrong source index shows."""
    rng = np.random.default_rng(seed)
    return rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float64) + 1.0


# ---------------------------------------------------------------------------------------
# pad == numpy.pad
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("border", BORDERS)
def test_pad_equals_numpy_1d_every_width(border):
    # every (lo, hi) in 0..3n+2 on both sides, n = 1..6: widths wider than the signal
    # (repeated reflection / wrap) included
    for n in range(1, 7):
        x = signal((n,), seed=n)
        for lo, hi in itertools.product(range(3 * n + 3), repeat=2):
            got = pad(x, ((lo, hi),), border, cval=CVAL)
            np.testing.assert_array_equal(got, numpy_pad(x, ((lo, hi),), border),
                                          err_msg=f"n={n} lo={lo} hi={hi}")


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 1), (2, 2, 3), (1, 3, 2)])
def test_pad_equals_numpy_nd(border, shape):
    x = signal(shape, seed=len(shape))
    rng = np.random.default_rng(sum(shape))
    for _ in range(6):
        widths = tuple((int(rng.integers(0, 3 * n + 3)), int(rng.integers(0, 3 * n + 3)))
                       for n in shape)
        np.testing.assert_array_equal(pad(x, widths, border, cval=CVAL),
                                      numpy_pad(x, widths, border), err_msg=str(widths))


def test_pad_integer_and_complex_inputs():
    x = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    got = pad(x, 1, "wrap")
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, np.pad(x, 1, "wrap").astype(np.float64))
    z = np.array([1 + 2j, 3 - 1j])
    got = pad(z, 2, "reflect")
    assert got.dtype == np.complex128
    np.testing.assert_array_equal(got, np.pad(z, 2, "reflect"))


@pytest.mark.parametrize("pad_width", [
    2,                      # int: every side of every axis
    (1, 3),                 # one (lo, hi) pair for every axis
    ((0, 2), (3, 1)),       # one pair per axis
    ((2,), (1,)),           # one width per axis, both sides
    np.array([[1, 0], [0, 2]]),
])
def test_pad_width_broadcasting(pad_width):
    x = signal((2, 3))
    for border in BORDERS:
        np.testing.assert_array_equal(pad(x, pad_width, border, cval=CVAL),
                                      numpy_pad(x, pad_width, border))


def test_pad_zero_width_is_a_float_copy():
    x = signal((3, 2))
    np.testing.assert_array_equal(pad(x, 0, "reflect"), x)


def test_pad_empty_axis_constant_is_allowed():
    x = np.zeros((0, 2))
    np.testing.assert_array_equal(pad(x, 1, "constant", cval=3.0), np.full((2, 4), 3.0))


def test_pad_rejects_unknown_border_and_lists_accepted_names():
    with pytest.raises(ValueError, match="unknown border 'bogus'") as info:
        pad(np.ones(3), 1, "bogus")
    for name in BORDERS:
        assert name in str(info.value)


def test_pad_rejects_non_string_border():
    with pytest.raises(TypeError, match="border"):
        pad(np.ones(3), 1, 3)


@pytest.mark.parametrize("pad_width", [-1, (1, -2), ((0, 1), (-1, 0))])
def test_pad_rejects_negative_width(pad_width):
    with pytest.raises(ValueError, match="pad_width must be >= 0"):
        pad(np.ones((2, 2)), pad_width, "edge")


def test_pad_rejects_non_integer_and_misshapen_width():
    with pytest.raises(TypeError, match="pad_width"):
        pad(np.ones(3), 1.5, "edge")
    with pytest.raises(ValueError, match="pad_width"):
        pad(np.ones((2, 2)), ((1, 1), (1, 1), (1, 1)), "edge")


@pytest.mark.parametrize("border", ["edge", "symmetric", "reflect", "wrap"])
def test_pad_rejects_empty_axis_with_non_constant_border(border):
    with pytest.raises(ValueError, match=f"empty axis 1 with border '{border}'"):
        pad(np.zeros((2, 0)), 1, border)


def test_source_index_agrees_with_numpy_pad_far_outside():
    # positions up to 5 periods away on both sides
    for n in range(1, 6):
        x = np.arange(n, dtype=np.float64)
        for border in ("edge", "symmetric", "reflect", "wrap"):
            width = 10 * n + 3
            padded = np.pad(x, width, mode=border)
            got = [source_index(i, n, border) for i in range(-width, n + width)]
            np.testing.assert_array_equal(got, padded, err_msg=f"{border} n={n}")
        assert source_index(-1, n, "constant") is None
        assert source_index(n, n, "constant") is None


# ---------------------------------------------------------------------------------------
# The alias table (README.md, "Borders", written out here, not read from the module)
# ---------------------------------------------------------------------------------------

EXPECTED_ALIASES = {
    "zeros": "constant", "fill": "constant", "grid-constant": "constant",
    "BORDER_CONSTANT": "constant",
    "nearest": "edge", "replicate": "edge", "BORDER_REPLICATE": "edge",
    "grid-mirror": "symmetric", "symm": "symmetric", "BORDER_REFLECT": "symmetric",
    "mirror": "reflect", "BORDER_REFLECT_101": "reflect", "BORDER_REFLECT101": "reflect",
    "BORDER_DEFAULT": "reflect",
    "circular": "wrap", "periodic": "wrap", "grid-wrap": "wrap", "BORDER_WRAP": "wrap",
}


def test_canonical_names_are_numpy_pad_modes():
    assert BORDERS == ("constant", "edge", "symmetric", "reflect", "wrap")
    for border in BORDERS:
        assert canonical_border(border) == border
        np.pad(np.ones(3), 1, mode=border)  # numpy knows the name


@pytest.mark.parametrize("alias, canonical", sorted(EXPECTED_ALIASES.items()))
def test_every_alias(alias, canonical):
    assert canonical_border(alias) == canonical


def test_alias_table_has_no_extra_or_ambiguous_names():
    assert ALIASES == EXPECTED_ALIASES
    # scipy.ndimage's "reflect" means our symmetric: it must not be an alias, and a
    # canonical name must never be an alias of another border
    assert not set(ALIASES) & set(BORDERS)


def test_reflect_is_numpys_reflect():
    assert canonical_border("reflect") == "reflect"
    np.testing.assert_array_equal(pad(np.array([1., 2., 3.]), 2, "reflect"),
                                  [3., 2., 1., 2., 3., 2., 1.])


@pytest.mark.parametrize("name, meaning", [
    ("reflect", "symmetric"), ("mirror", "reflect"), ("nearest", "edge"),
    ("constant", "constant"), ("wrap", "wrap"), ("grid-mirror", "symmetric"),
    ("grid-wrap", "wrap"), ("grid-constant", "constant"),
])
def test_canonical_border_reads_scipy_ndimage_meaning(name, meaning):
    assert canonical_border(name, library="scipy.ndimage") == meaning


def test_canonical_border_reads_other_libraries():
    assert canonical_border("reflect", library="torch") == "reflect"
    assert canonical_border("symm", library="scipy.signal") == "symmetric"
    assert canonical_border("BORDER_REFLECT", library="opencv") == "symmetric"
    with pytest.raises(ValueError, match="unknown border"):
        canonical_border("bogus", library="torch")


def test_library_border_round_trip():
    for library, names in LIBRARY_NAMES.items():
        assert set(names) <= set(BORDERS), library
        for border, spelled in names.items():
            assert library_border(border, library) == spelled
            assert canonical_border(spelled, library=library) == border
    assert library_border("symmetric", "torch") is None
    assert library_border("mirror", "scipy.ndimage") == "mirror"  # alias in, library name out


# ---------------------------------------------------------------------------------------
# LIBRARY_NAMES, checked against each library
# ---------------------------------------------------------------------------------------

LIBRARY_SIGNALS = [((1,), ((3, 2),)), ((2,), ((5, 4),)), ((3,), ((1, 9),)), ((4,), ((4, 4),)),
                   ((5,), ((11, 0),)), ((2, 3), ((3, 1), (2, 7))), ((3, 2), ((4, 4), (0, 5)))]


def ndimage_extension(x, widths, mode, cval):
    """The padded signal as scipy.ndimage sees it: output sample 0 of a correlation with a
    one-hot kernel (odd length, longer than the padded signal) reads extended position t."""
    ndi = pytest.importorskip("scipy.ndimage")
    half = [n + lo + hi for n, (lo, hi) in zip(x.shape, widths)]
    out = np.empty(tuple(n + lo + hi for n, (lo, hi) in zip(x.shape, widths)))
    for pos in np.ndindex(*out.shape):
        kernel = np.zeros(tuple(2 * m + 1 for m in half))
        # kernel tap p at output 0 reads x_ext[p - m]: read t = pos - lo
        kernel[tuple(p - lo + m for p, (lo, _), m in zip(pos, widths, half))] = 1.0
        out[pos] = ndi.correlate(x, kernel, mode=mode, cval=cval)[(0,) * x.ndim]
    return out


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("shape, widths", LIBRARY_SIGNALS)
def test_library_names_scipy_ndimage(border, shape, widths):
    x = signal(shape)
    mode = LIBRARY_NAMES["scipy.ndimage"][border]
    np.testing.assert_array_equal(ndimage_extension(x, widths, mode, CVAL),
                                  pad(x, widths, border, cval=CVAL))


@pytest.mark.parametrize("border", sorted(LIBRARY_NAMES["scipy.signal"]))
@pytest.mark.parametrize("shape, widths", LIBRARY_SIGNALS)
def test_library_names_scipy_signal(border, shape, widths):
    ss = pytest.importorskip("scipy.signal")
    x = signal(shape)
    x2 = x.reshape((1,) * (2 - x.ndim) + x.shape)
    w2 = ((0, 0),) * (2 - x.ndim) + widths
    boundary = LIBRARY_NAMES["scipy.signal"][border]
    # 'full' convolution with a delta at kernel index (r, c): y[i, j] = x_ext[i - r, j - c].
    # A delta at the far corner reads the low-side extension, one at (0, 0) the high side.
    kh, kw = (max(lo, hi) + 1 for lo, hi in w2)
    (lo0, hi0), (lo1, hi1) = w2
    n0, n1 = x2.shape
    got = np.empty((n0 + lo0 + hi0, n1 + lo1 + hi1))
    for r, c in itertools.product(range(kh), range(kw)):
        delta = np.zeros((kh, kw))
        delta[r, c] = 1.0
        y = ss.convolve2d(x2, delta, mode="full", boundary=boundary, fillvalue=CVAL)
        for i, j in np.ndindex(*y.shape):
            t0, t1 = i - r, j - c      # extended position read
            if -lo0 <= t0 < n0 + hi0 and -lo1 <= t1 < n1 + hi1:
                got[t0 + lo0, t1 + lo1] = y[i, j]
    np.testing.assert_array_equal(got, pad(x2, w2, border, cval=CVAL))


def test_scipy_signal_lacks_edge_and_reflect():
    ss = pytest.importorskip("scipy.signal")
    table = LIBRARY_NAMES["scipy.signal"]
    assert "edge" not in table and "reflect" not in table
    for name in ("nearest", "edge", "mirror", "reflect"):
        with pytest.raises(ValueError):
            ss.convolve2d(np.ones((3, 3)), np.ones((2, 2)), boundary=name)


def torch_accepts(border, n, lo, hi):
    """F.pad's documented limits: reflect needs width < n, circular width <= n."""
    if border == "reflect":
        return max(lo, hi) < n
    if border == "wrap":
        return max(lo, hi) <= n
    return True


@pytest.mark.parametrize("border", sorted(LIBRARY_NAMES["torch"]))
def test_library_names_torch(border):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    mode = LIBRARY_NAMES["torch"][border]
    kwargs = {"value": CVAL} if border == "constant" else {}
    checked = 0
    for n in range(1, 6):
        x = signal((n,), seed=n)
        for lo, hi in itertools.product(range(2 * n + 2), repeat=2):
            try:
                y = F.pad(torch.from_numpy(x)[None, None], (lo, hi), mode=mode, **kwargs)[0, 0]
            except (RuntimeError, ValueError):
                assert not torch_accepts(border, n, lo, hi), (n, lo, hi)
                continue
            np.testing.assert_array_equal(y.numpy(), pad(x, ((lo, hi),), border, cval=CVAL),
                                          err_msg=f"n={n} lo={lo} hi={hi}")
            checked += 1
    x = signal((3, 4))
    widths = ((2, 1), (0, 3))
    y = F.pad(torch.from_numpy(x)[None, None], (0, 3, 2, 1), mode=mode, **kwargs)[0, 0]
    np.testing.assert_array_equal(y.numpy(), pad(x, widths, border, cval=CVAL))
    assert checked > 50


def test_torch_lacks_symmetric():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    assert "symmetric" not in LIBRARY_NAMES["torch"]
    for name in ("symmetric", "symm"):
        with pytest.raises((NotImplementedError, ValueError, RuntimeError)):
            F.pad(torch.ones(1, 1, 4), (1, 1), mode=name)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("dtype", [np.float64, np.uint8])
def test_library_names_opencv(border, dtype):
    cv2 = pytest.importorskip("cv2")
    code = getattr(cv2, LIBRARY_NAMES["opencv"][border])
    cval = 7 if dtype == np.uint8 else CVAL
    for shape in ((1, 1), (1, 3), (2, 3), (4, 2), (3, 5)):
        x = signal(shape).astype(dtype)
        # widths wider than the image (OpenCV reflects and wraps repeatedly, as numpy does)
        for top, bottom, left, right in ((1, 0, 2, 1), (0, 3, 1, 4), (7, 5, 9, 11), (2, 2, 0, 0)):
            y = cv2.copyMakeBorder(x, top, bottom, left, right, code, value=[cval] * 4)
            expected = pad(x, ((top, bottom), (left, right)), border, cval=cval)
            np.testing.assert_array_equal(y, expected, err_msg=f"{shape} {(top, bottom, left, right)}")


def test_every_opencv_alias_is_opencv_constant_with_that_meaning():
    cv2 = pytest.importorskip("cv2")
    x = signal((3, 4))
    for alias, canonical in EXPECTED_ALIASES.items():
        if alias.startswith("BORDER_"):
            y = cv2.copyMakeBorder(x, 4, 3, 5, 2, getattr(cv2, alias), value=[CVAL] * 4)
            np.testing.assert_array_equal(y, pad(x, ((4, 3), (5, 2)), canonical, cval=CVAL),
                                          err_msg=alias)


def test_every_scipy_ndimage_alias_has_that_meaning():
    # the aliases that are scipy.ndimage modes mean the same border there
    x = signal((4,))
    widths = ((6, 5),)
    checked = 0
    for alias, canonical in EXPECTED_ALIASES.items():
        if alias in ("grid-constant", "nearest", "grid-mirror", "mirror", "grid-wrap"):
            np.testing.assert_array_equal(ndimage_extension(x, widths, alias, CVAL),
                                          pad(x, widths, canonical, cval=CVAL), err_msg=alias)
            checked += 1
    assert checked == 5


def test_torch_aliases_have_that_meaning():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    x = signal((5,))
    for alias in ("replicate", "circular"):
        y = F.pad(torch.from_numpy(x)[None, None], (3, 2), mode=alias)[0, 0].numpy()
        np.testing.assert_array_equal(y, pad(x, (3, 2), canonical_border(alias)))
    # torch layers' padding_mode 'zeros' is the constant border with 0
    conv = torch.nn.Conv1d(1, 1, 3, padding=2, padding_mode="zeros", bias=False).double()
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 0] = 1.0  # tap 0 reads xp[i]: the padded signal's first 7 samples
        y = conv(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.testing.assert_array_equal(y, pad(x, 2, canonical_border("zeros"))[:7])


def test_scipy_signal_aliases_have_that_meaning():
    ss = pytest.importorskip("scipy.signal")
    x = signal((2, 3))
    delta = np.zeros((3, 3))
    delta[2, 2] = 1.0   # full output [i, j] reads x_ext[i - 2, j - 2]: the low corner
    for alias in ("fill", "symm", "circular"):
        y = ss.convolve2d(x, delta, mode="full", boundary=alias, fillvalue=CVAL)
        expected = pad(x, ((2, 0), (2, 0)), canonical_border(alias), cval=CVAL)
        np.testing.assert_array_equal(y, expected, err_msg=alias)
