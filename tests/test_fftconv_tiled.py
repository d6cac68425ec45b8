"""The tiled FFT candidate (candidates/correlate/fft_tiled_scipy.py) and the fftconvolve peer
(candidates/correlate/fftconvolve_scipy.py): verified against the float64 oracle under the
'fft' error bound, with tiles forced tiny so that every border crosses tile edges; the
per-tile border index maps against refimpl.pad; the tile-size rule; memory bounded.
"""
from __future__ import annotations

import doctest
import itertools
import tracemalloc

import numpy as np
import pytest

from convbench import registry, values
from convbench.cases import make_case, suite
from convbench.spec import Spec
from convbench.verification import verify_candidates
from refimpl import correlate as ref
from refimpl.geometry import image_padding
from refimpl.pad import BORDERS, pad, source_index

tiled = pytest.importorskip("candidates.correlate.fft_tiled_scipy")
peer = pytest.importorskip("candidates.correlate.fftconvolve_scipy")
pytest.importorskip("scipy.fft")


@pytest.fixture
def threads(monkeypatch):
    from candidates import runtime

    def set_to(n):
        monkeypatch.setattr(runtime, "_threads", n)
    set_to(1)
    return set_to


def check(op, name, cases):
    report = verify_candidates([registry.get(op, name)], cases)
    assert report.passed, str(report)
    for row in report.rows:   # a case not run says why (non-finite data for FFT algorithms)
        assert row.status == "pass" or (row.status == "unsupported" and row.detail), row
    return report


# ---------------------------------------------------------------------------------------
# the small suite, both candidates; fft_tiled also with tiles forced tiny
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["correlate", "convolve"])
@pytest.mark.parametrize("name", ["fft_tiled_scipy", "fftconvolve_scipy"])
def test_small_suite(threads, op, name):
    cases = {c.id: c for c in suite("small", op)}
    report = check(op, name, list(cases.values()))
    # every case runs but those whose values an FFT cannot serve (convbench.values)
    assert all(cases[r.case].nonfinite or values.exact_integer(cases[r.case].spec)
               for r in report.rows if r.status != "pass")


@pytest.mark.parametrize("op", ["correlate", "convolve"])
@pytest.mark.parametrize("tile", [1, 3])
def test_small_suite_with_tiny_tiles(threads, monkeypatch, op, tile):
    """TILE = 1 or 3 outputs per axis: every small case is cut into many tiles, so every
    border (wrap, padding wider than the image, kernel larger than the image) is read by
    tiles whose windows straddle x's edge or lie wholly outside it."""
    monkeypatch.setattr(tiled, "TILE", tile)
    threads(2)           # the thread pool path (several tiles on every case)
    check(op, "fft_tiled_scipy", suite("small", op))


def tile_cases(op):
    """Cases sized so that TILE = 16 gives several tiles per axis, every border."""
    cases = []
    for border in BORDERS:
        cases += [
            make_case(op, ((50, 45), (5, 4)), "float32", border=border, cval=2.5),
            make_case(op, ((35, 33), (7, 6)), "float64", border=border, origin=(-3, 2)),
            make_case(op, ((5, 3), (19, 23)), "float32", border=border),          # kernel > image
            make_case(op, ((2, 3), (9, 12)), "float64", border=border, padding="full"),
            make_case(op, ((300,), (9,)), "float64", border=border, cval=-1.0),    # 1-D
            make_case(op, ((3,), (40,)), "float32", border=border),               # wider padding
            make_case(op, ((18, 20, 5), (3, 4, 2)), "float32", border=border),    # 3-D
            make_case(op, ((40, 35), (3, 3)), ("uint8", "float32"), data=("camera", "sharpen"),
                      border=border, out_dtype="uint8"),
            make_case(op, ((33, 34), (5, 5)), "float16", border=border),
        ]
    cases += [
        make_case(op, ((45, 50), (4, 5)), "float32", padding="valid"),
        make_case(op, ((45, 50), (4, 5)), "float32", padding="full", border="wrap"),
        make_case(op, ((40, 36), (5, 3)), "float32", border="reflect", strided=True),
        make_case(op, ((40, 40), (3, 3)), ("int16", "float32"), data=("random", "edge"),
                  border="wrap", out_dtype="int16"),
    ]
    return cases


@pytest.mark.parametrize("op", ["correlate", "convolve"])
def test_many_tiles_equal_the_oracle(threads, monkeypatch, op):
    """TILE = 16: several tiles per axis on every case, serial and with the thread pool
    (each case's oracle is computed once and checked against both)."""
    monkeypatch.setattr(tiled, "TILE", 16)
    cases = tile_cases(op)
    candidate = registry.get(op, "fft_tiled_scipy")
    for case in cases:
        for workers in (1, 2):
            threads(workers)
            row = verify_candidates([candidate], [case]).rows[0]
            assert row.status == "pass", (workers, row)
    # the tiling really happened: more than one tile on the long axes
    spec = cases[0].spec.operation.as_correlate(cases[0].spec)
    lengths = tiled.transform_lengths(spec.output_shape(), spec.shapes[1], True, 1, 16)
    assert lengths == (20, 20)          # T = 16 outputs: 50 x 45 -> 4 x 3 tiles


@pytest.mark.parametrize("border", BORDERS)
def test_tiles_agree_with_the_whole_image_route_on_a_large_image(threads, monkeypatch, border):
    """Auto tile size, 2 threads, an image large enough for several tiles (600 x 700 with a
    15x15 kernel): equal to the one-transform route within the fft bound (checked at
    sampled points against the oracle by the verifier, every border zone included)."""
    threads(2)
    case = make_case("correlate", ((600, 700), (15, 15)), "float32", border=border, cval=0.5)
    lengths = tiled.transform_lengths((600, 700), (15, 15), True, 2)
    assert math_prod_tiles((600, 700), (15, 15), lengths) > 1
    report = check("correlate", "fft_tiled_scipy", [case])
    assert report.rows[0].checked.endswith("points")


def math_prod_tiles(out_shape, kernel_shape, lengths):
    return int(np.prod([-(-n // (L - k + 1)) for n, k, L in zip(out_shape, kernel_shape, lengths)]))


def test_threads_do_not_change_the_bits(threads, monkeypatch):
    """Every tile is computed the same way whichever thread takes it (workers=1 inside)."""
    monkeypatch.setattr(tiled, "TILE", 24)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((130, 110)).astype(np.float32)
    w = rng.standard_normal((7, 9)).astype(np.float32)
    threads(1)
    one = tiled.correlate(x, w, border="reflect")
    threads(2)
    two = tiled.correlate(x, w, border="reflect")
    np.testing.assert_array_equal(one, two)


def test_public_scipy_fft_route_gives_the_same_result(threads, monkeypatch):
    """The allocation-free pocketfft route and the public scipy.fft route agree."""
    monkeypatch.setattr(tiled, "TILE", 20)
    rng = np.random.default_rng(4)
    for dtype in ("float32", "float64", "complex128"):
        x = rng.standard_normal((50, 45)).astype(dtype)
        w = rng.standard_normal((5, 4)).astype(dtype)
        if np.dtype(dtype).kind == "c":
            x = x + 1j * rng.standard_normal(x.shape)
        fast = tiled.correlate(x, w, border="symmetric")
        monkeypatch.setattr(tiled, "USE_POCKETFFT_OUT", False)
        plain = tiled.correlate(x, w, border="symmetric")
        monkeypatch.setattr(tiled, "USE_POCKETFFT_OUT", True)
        expected = ref.correlate(x, w, border="symmetric")
        scale = np.abs(x).max() * np.abs(w).sum()
        u = np.finfo(fast.real.dtype).eps
        np.testing.assert_allclose(fast, expected, rtol=0, atol=50 * u * scale)
        np.testing.assert_allclose(plain, expected, rtol=0, atol=50 * u * scale)


# ---------------------------------------------------------------------------------------
# per-tile border index maps against refimpl.pad
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("border", BORDERS)
def test_border_index_is_source_index(border):
    for n in range(1, 7):
        positions = np.arange(-4 * n - 5, 5 * n + 6)
        got = tiled.border_index(positions, n, border)
        expected = [source_index(int(i), n, border) for i in positions]
        expected = [-1 if j is None else j for j in expected]
        assert got.tolist() == expected, (n, border)


def test_border_index_refuses_unknown_names():
    with pytest.raises(ValueError, match="border must be one of"):
        tiled.border_index([0, 1], 3, "mirror")


@pytest.mark.parametrize("blocks", [tiled.MAX_BLOCKS, 0])        # 0: the fancy-gather fallback
@pytest.mark.parametrize("border", BORDERS)
def test_every_tile_window_equals_numpy_pad(border, blocks, monkeypatch):
    """Gathering a tile from x by the border rule equals the same window of the whole padded
    image (refimpl.pad.pad, the oracle's extension): windows inside, across an edge, wider
    than x, and wholly in the border."""
    monkeypatch.setattr(tiled, "MAX_BLOCKS", blocks)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, 7))
    lo, hi = (9, 11), (12, 4)
    xp = pad(x, tuple(zip(lo, hi)), border, cval=-3.0)
    for start0, start1 in itertools.product((0, 3, 7, 12, 20), (0, 5, 9, 14)):
        size0, size1 = min(6, xp.shape[0] - start0), min(8, xp.shape[1] - start1)
        items = []
        for a, (start, size) in enumerate(((start0, size0), (start1, size1))):
            idx = tiled.border_index(np.arange(start - lo[a], start - lo[a] + size), x.shape[a], border)
            items.append((start, size, tiled.index_runs(idx), idx))
        buf = np.full((8, 10), np.nan)
        tiled._fill(buf, x, items, -3.0)
        np.testing.assert_array_equal(buf[:size0, :size1], xp[start0:start0 + size0, start1:start1 + size1])


def test_index_runs_cover_the_map():
    rng = np.random.default_rng(6)
    for border in BORDERS:
        for n in (1, 2, 5):
            idx = tiled.border_index(np.arange(-13, 19) + int(rng.integers(-3, 4)), n, border)
            rebuilt = np.empty_like(idx)
            for d, length, src, step in tiled.index_runs(idx):
                rebuilt[d:d + length] = -1 if src < 0 else src + step * np.arange(length)
            np.testing.assert_array_equal(rebuilt, idx)


# ---------------------------------------------------------------------------------------
# tile size rule
# ---------------------------------------------------------------------------------------

def test_tile_rule_bounds_the_blocks():
    # seed-fft-10k: blocks of at most 1024 per axis, each keeping at least K outputs
    lengths = tiled.transform_lengths((10000, 10000), (15, 15), True, 2)
    assert all(15 <= L - 14 and L <= 1024 for L in lengths), lengths
    assert np.prod(lengths) <= 2**20
    # a small image is one tile: the whole-image transform (fft_scipy's)
    from scipy.fft import next_fast_len
    assert tiled.transform_lengths((40, 30), (5, 5), True, 2) == (next_fast_len(44), next_fast_len(34, real=True))
    # forced tiles: T = 16 outputs, L = fast length >= 16 + K - 1; never beyond one tile
    # (axis 1: 10 outputs + 4 = 14 = 2*7, not 5-smooth for the real axis -> 15)
    assert tiled.transform_lengths((100, 10), (3, 5), True, 2, 16) == (18, 15)


@pytest.mark.parametrize("bad", [0, -3, True])
def test_tile_setting_is_checked(bad):
    with pytest.raises(ValueError, match="TILE must be a positive int"):
        tiled.transform_lengths((100,), (3,), True, 1, bad)


def test_block_cost_penalises_blocks_beyond_the_cache():
    per_sample = {L: tiled.block_cost((L, L)) / (L * L * np.log2(L * L)) for L in (256, 512, 1024, 2048)}
    assert per_sample[256] > per_sample[512]          # the per-tile overhead
    assert per_sample[512] < per_sample[1024] < per_sample[2048]
    assert tiled.block_cost((1024, 256)) > tiled.block_cost((256, 1024))   # strided columns


def test_doctests():
    assert doctest.testmod(tiled, raise_on_error=False).failed == 0


# ---------------------------------------------------------------------------------------
# dtypes, memory, refusals
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("module", [tiled, peer])
def test_result_dtypes(threads, module):
    rng = np.random.default_rng(7)
    w = rng.standard_normal((3, 3))
    x16 = rng.standard_normal((12, 12)).astype(np.float16)
    assert module.correlate(x16, w.astype(np.float16)).dtype == np.float16
    x8 = rng.integers(0, 256, (12, 12)).astype(np.uint8)
    assert module.correlate(x8, w.astype(np.float32)).dtype == np.float32
    assert module.correlate(x8, w).dtype == np.float64
    y = module.correlate(x8, np.full((3, 3), 40.0, dtype=np.float32), out_dtype="uint8")
    assert y.dtype == np.uint8 and y.max() == 255          # saturated, not wrapped


@pytest.mark.parametrize("module", [tiled, peer])
def test_bfloat16_refused_with_a_reason(module):
    spec = Spec.make("correlate", ((8, 8), (3, 3)), ("bfloat16", "bfloat16"))
    assert "bfloat16" in module.supports(spec)


def extra_peak(fn, *args, **kwargs):
    """tracemalloc's peak during one call (numpy's allocations are traced), less the result."""
    tracemalloc.start()
    try:
        y = fn(*args, **kwargs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - y.nbytes


def test_memory_is_bounded_by_the_tiles(threads, monkeypatch):
    """Beyond the output, the tiled route holds a few blocks per thread whatever the image
    size; fft_scipy, the whole-image route, holds image-sized buffers (its result may be a
    view of its inverse transform, so the subtraction undercounts it: > 1x is asserted)."""
    threads(2)
    monkeypatch.setattr(tiled, "TILE", 200)            # blocks of 216 x 216 on both sizes
    rng = np.random.default_rng(8)
    w = rng.standard_normal((15, 15)).astype(np.float32)
    small = rng.standard_normal((600, 600)).astype(np.float32)
    large = rng.standard_normal((1800, 1800)).astype(np.float32)
    tiled.correlate(small, w)                           # kernel transform cached
    block = 216 * 216 * 4
    extra_small = extra_peak(tiled.correlate, small, w)
    extra_large = extra_peak(tiled.correlate, large, w)
    assert extra_small < 2 * 4 * block + 2**20, extra_small      # 2 workers x 3 buffers
    assert extra_large < extra_small + 2**20, (extra_small, extra_large)
    assert extra_large < 0.15 * large.nbytes
    fft_scipy = pytest.importorskip("candidates.correlate.fft_scipy")
    fft_scipy.clear_cache()                               # its scratch buffers too
    whole = extra_peak(fft_scipy.correlate, large, w)     # padded image, spectrum, inverse
    assert whole > large.nbytes and whole > 10 * extra_large, (whole, extra_large)


def test_peer_matches_scipy_ndimage():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((31, 29))
    w = rng.standard_normal((6, 5))
    for border in BORDERS:
        mode = {"constant": "constant", "edge": "nearest", "symmetric": "reflect",
                "reflect": "mirror", "wrap": "wrap"}[border]
        expected = ndimage.correlate(x, w, mode=mode, cval=1.25, origin=(-1, 1))
        np.testing.assert_allclose(peer.correlate(x, w, border=border, cval=1.25, origin=(-1, 1)),
                                   expected, rtol=0, atol=1e-12 * np.abs(x).max() * np.abs(w).sum() * 40)
        np.testing.assert_allclose(tiled.correlate(x, w, border=border, cval=1.25, origin=(-1, 1)),
                                   expected, rtol=0, atol=1e-12 * np.abs(x).max() * np.abs(w).sum() * 40)
    assert image_padding(w.shape, "same", (-1, 1)) == ((2, 3), (3, 1))
