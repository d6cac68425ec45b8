"""correlate, convolve and gaussian on dask arrays (convbench.dask_arrays): lazy results that
equal the in-memory call on every border, kernel parity, origin, padding and chunking
(chunks of one sample and chunks smaller than the halo included), 1-D to 3-D, on the
threaded scheduler and on a dask.distributed cluster of worker processes."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

import convbench  # noqa: E402
from convbench.tolerance import gamma  # noqa: E402
from refimpl.pad import BORDERS  # noqa: E402

SYNC = {"scheduler": "synchronous"}   # the layout is under test here; the cluster below


def _bound(op, x, w, kw, u, factor):
    """factor * gamma_K(u) * (|x| (*) |w|): the direct-sum bound (convbench.tolerance),
    its scale computed in float64 by the oracle-like direct sum."""
    scale = op(np.abs(x).astype(np.float64), np.abs(w).astype(np.float64),
               **{**kw, "cval": abs(kw.get("cval", 0.0))}, algorithm="shift_add_numpy")
    return factor * gamma(w.size, u) * scale + 1e-300


def _check(op, x, w, chunks, kw, algorithm=None, u=2.0 ** -53, factor=4):
    """The dask result (its shape, chunks, dtype and values) against the in-memory call."""
    want = op(x, w, **kw, algorithm=algorithm)
    lazy = op(da.from_array(x, chunks=chunks), w, **kw, algorithm=algorithm)
    assert isinstance(lazy, da.Array)
    assert lazy.shape == want.shape and lazy.dtype == want.dtype
    got = lazy.compute(**SYNC)
    assert got.dtype == want.dtype
    if kw.get("padding", "same") == "same":
        assert lazy.chunks == da.from_array(x, chunks=chunks).chunks
    tol = _bound(op, x, w, kw, u, factor)
    err = np.abs(got.astype(np.float64) - want)
    assert (err <= tol).all(), (f"{op.__name__} {kw} chunks {chunks}: max error "
                                f"{err.max():.3g}, at {np.unravel_index(err.argmax(), err.shape)}")


# (kernel, chunks) per rank: odd and even extents; chunks of one sample, smaller than the
# halo, uneven, one chunk
CASES = {
    1: [(k, c) for k in ((3,), (4,), (6,)) for c in (1, 2, (5, 3, 4, 1), 13)],
    2: [((3, 4), 1), ((3, 4), ((4, 5), (3, 1, 4))), ((5, 2), 2), ((5, 2), ((1, 8), (5, 3)))],
    3: [((3, 2, 3), (1, 3, 2)), ((3, 2, 3), ((3, 2), (4,), (1, 5)))],
}
SHAPES = {1: (13,), 2: (9, 8), 3: (5, 4, 6)}


def _origins(k):
    """Every origin of the kernel, on every axis at once, plus one mixed per axis."""
    ends = [(-(n // 2), (n - 1) // 2) for n in k]
    return [0, tuple(lo for lo, _ in ends), tuple(hi for _, hi in ends)]


@pytest.mark.parametrize("ndim", sorted(CASES))
@pytest.mark.parametrize("border", BORDERS)
def test_equals_in_memory_every_border_kernel_origin_padding_chunking(border, ndim):
    """correlate and convolve with a fixed direct algorithm, float64: within a few
    float64 roundings (the bound) of the in-memory call everywhere: no seams."""
    rng = np.random.default_rng(ndim)
    x = rng.standard_normal(SHAPES[ndim])
    for k, chunks in CASES[ndim]:
        w = rng.standard_normal(k)
        origins = _origins(k)
        calls = [(convbench.correlate, dict(padding="same", origin=o)) for o in origins]
        calls += [(convbench.correlate, dict(padding="valid")),
                  (convbench.correlate, dict(padding="full")),
                  # convolve moves an even kernel's anchor: its extreme origins
                  (convbench.convolve, dict(padding="same", origin=origins[1])),
                  (convbench.convolve, dict(padding="same", origin=origins[2]))]
        for op, kw in calls:
            _check(op, x, w, chunks, dict(kw, border=border, cval=1.5),
                   algorithm="shift_add_numpy")


@pytest.mark.parametrize("border", BORDERS)
def test_default_choice_per_chunk_within_the_contract(border):
    """float32 and the default choice (per chunk, for its own shape): the in-memory
    default and each chunk's are each within 64 gamma_K of the oracle, so within twice
    that of each other."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 37)).astype(np.float32)
    for k, chunks in (((5, 5), (16, 9)), ((4, 7), 3), ((15, 15), (20, 30))):
        w = rng.standard_normal(k).astype(np.float32)
        _check(convbench.correlate, x, w, chunks, dict(border=border, cval=-0.5),
               u=2.0 ** -24, factor=128)


def test_dask_image_242_wrap_on_a_chunked_array():
    """dask-image#242: mode='wrap' per chunk wrapped each chunk instead of the array.
    Golden: scipy.ndimage.correlate on the whole array, mode 'wrap' (our 'wrap')."""
    from scipy import ndimage

    x = np.arange(40, dtype=np.float64).reshape(5, 8) ** 1.5
    w = np.arange(1.0, 13.0).reshape(3, 4)
    want = ndimage.correlate(x, w, mode="wrap")
    for chunks in ((2, 3), (5, 4), 1):
        got = convbench.correlate(da.from_array(x, chunks=chunks), w, border="wrap").compute()
        np.testing.assert_allclose(got, want, rtol=1e-12)
    per_chunk = np.block([[ndimage.correlate(x[:, :4], w, mode="wrap"),
                           ndimage.correlate(x[:, 4:], w, mode="wrap")]])
    assert not np.allclose(per_chunk, want)         # the bug this guards against


@pytest.mark.parametrize("border", ["symmetric", "reflect", "wrap", "edge"])
def test_halo_wider_than_the_array_repeats_the_rule(border):
    """A kernel longer than the array: the border repeats as numpy.pad does. Golden:
    numpy.pad of the whole array, then scipy.signal's 'valid' correlation."""
    from scipy import signal

    x = np.array([1.0, 4.0, 2.0, 8.0, 5.0])
    w = np.linspace(-1.0, 2.0, 11)
    want = signal.correlate(np.pad(x, (5, 5), mode=border), w, mode="valid")
    for chunks in (1, 2, 5):
        got = convbench.correlate(da.from_array(x, chunks=chunks), w, border=border).compute(**SYNC)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("border", BORDERS)
def test_gaussian_equals_in_memory(border):
    rng = np.random.default_rng(2)
    for shape, sigma, chunks in (((29,), 2.0, 4), ((17, 19), (1.5, 0.0), (5, 3)),
                                 ((9, 7, 8), 0.8, (2, 3, 5))):
        x = rng.standard_normal(shape).astype(np.float32)
        want = convbench.gaussian(x, sigma, border=border, cval=0.25)
        lazy = convbench.gaussian(da.from_array(x, chunks=chunks), sigma, border=border, cval=0.25)
        assert lazy.chunks == da.from_array(x, chunks=chunks).chunks and lazy.dtype == want.dtype
        got = lazy.compute(**SYNC)
        # each within the contract (64 gamma_K, K = taps + 1) of the oracle: twice that here
        taps = np.prod([2 * int(4.0 * s + 0.5) + 1 for s in np.broadcast_to(sigma, len(shape))])
        scale = convbench.gaussian(np.abs(x).astype(np.float64), sigma, border=border, cval=0.25)
        np.testing.assert_array_less(np.abs(got - want), 128 * gamma(int(taps) + 1, 2.0 ** -24)
                                     * scale + 1e-30)


def test_integer_out_dtype_rounds_and_saturates_as_in_memory():
    """An exact integer call (integer image, kernel and out_dtype) equals the in-memory
    call bit for bit; a float kernel into uint8 rounds and saturates like it."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (23, 17), dtype=np.uint8)
    w = rng.integers(-3, 4, (3, 4)).astype(np.int16)
    for border, cval in (("reflect", 0.0), ("constant", 300.0), ("constant", -1.0)):
        kw = dict(border=border, cval=cval, out_dtype=np.uint8)
        want = convbench.correlate(x, w, **kw)
        got = convbench.correlate(da.from_array(x, chunks=(5, 2)), w, **kw).compute(**SYNC)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)
    wf = rng.random((5, 5)).astype(np.float32) * 0.3
    kw = dict(border="edge", out_dtype="uint8")
    want = convbench.correlate(x, wf, **kw)
    got = convbench.correlate(da.from_array(x, chunks=7), wf, **kw).compute(**SYNC)
    assert np.abs(got.astype(int) - want).max() <= 1       # a half may round either way
    assert (got == want).mean() > 0.99


def test_fractional_cval_on_an_integer_image():
    """A uint8 image with cval 0.5: the windows hold the cval exactly (float windows)."""
    x = np.arange(30, dtype=np.uint8).reshape(5, 6)
    w = np.ones((3, 3), np.float32)
    want = convbench.correlate(x, w, cval=0.5)
    lazy = convbench.correlate(da.from_array(x, chunks=2), w, cval=0.5)
    assert lazy.dtype == want.dtype == np.float32
    np.testing.assert_allclose(lazy.compute(**SYNC), want, rtol=1e-6)
    assert want[0, 0] == 0 + 1 + 6 + 7 + 5 * 0.5


def test_lazy_until_computed_and_errors_before_any_work():
    def fail(block):
        raise AssertionError("a chunk was read")

    x = da.zeros((20, 20), chunks=5, dtype=np.float32).map_blocks(fail, dtype=np.float32)
    w = np.ones((3, 3), np.float32)
    y = convbench.correlate(x, w, border="wrap")         # no chunk read
    assert y.shape == (20, 20) and y.chunks == x.chunks
    with pytest.raises(ValueError, match="border"):
        convbench.correlate(x, w, border="mirrored")
    with pytest.raises(ValueError, match="origin"):
        convbench.correlate(x, w, origin=2)
    with pytest.raises(ValueError, match="same rank|rank"):
        convbench.correlate(x, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="algorithm"):
        convbench.correlate(x, w, algorithm="no_such_thing")
    with pytest.raises(ValueError, match="dask"):
        convbench.max_pool(da.zeros((1, 1, 4, 4), chunks=2), 2)
    z = da.from_array(np.arange(20.0), chunks=5)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        convbench.correlate(z[z > 3], np.ones(3))
    with pytest.raises(TypeError, match="x must be a dask array"):
        convbench.correlate(np.ones(5), da.ones(3, chunks=3))


def test_results_of_different_kernels_keep_apart_in_one_graph():
    x = np.arange(24.0).reshape(4, 6)
    xd = da.from_array(x, chunks=2)
    w1, w2 = np.ones((3, 3)), np.eye(3)
    both = da.stack([convbench.correlate(xd, w1), convbench.correlate(xd, w2)]).compute(**SYNC)
    np.testing.assert_allclose(both[0], convbench.correlate(x, w1))
    np.testing.assert_allclose(both[1], convbench.correlate(x, w2))


def test_valid_and_full_state_their_chunks():
    x = da.from_array(np.arange(20.0), chunks=(6, 6, 6, 2))
    w = np.ones(5)
    assert convbench.correlate(x, w, padding="valid").chunks == ((6, 6, 4),)
    assert convbench.correlate(x, w, padding="full").chunks == ((6, 6, 6, 6),)
    y = da.from_array(np.arange(12.0), chunks=4)
    assert convbench.correlate(y, np.ones(9), padding="valid").chunks == ((4,),)


def test_plan_with_dask_arrays():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((30, 26)).astype(np.float32)
    w = rng.standard_normal((4, 5)).astype(np.float32)
    xd = da.from_array(x, chunks=(8, 13))
    p = convbench.plan("correlate", xd, w, border="symmetric", origin=(1, -2))
    text = p.explain()
    assert "halo per axis (low, high): ((3, 0), (0, 4))" in text
    assert "never at chunk edges" in text and "runs:" in text
    want = convbench.correlate(x, w, border="symmetric", origin=(1, -2))
    got = p(xd, w).compute(**SYNC)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # other chunks, a dask kernel: the same plan
    got = p(da.from_array(x, chunks=3), da.from_array(w, chunks=2)).compute(**SYNC)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="made for"):
        p(da.from_array(x[:-1], chunks=8), w)
    g = convbench.plan("gaussian", xd, sigma=2.0, border="wrap", algorithm="ndimage_scipy")
    assert "ndimage_scipy" in g.explain() and "cropped by the radius" in g.explain()
    np.testing.assert_allclose(g(xd).compute(**SYNC), convbench.gaussian(x, 2.0, border="wrap"),
                               rtol=1e-5, atol=1e-6)
    assert pickle.loads(pickle.dumps(p.call)) == p.call


@pytest.fixture(scope="module")
def client():
    """Two worker processes, one thread each: tasks are pickled to other processes."""
    import os

    distributed = pytest.importorskip("distributed")
    environ = dict(os.environ)   # the nannies set OMP_NUM_THREADS & co. in this process
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()
    os.environ.clear()
    os.environ.update(environ)


def test_on_a_distributed_cluster_of_worker_processes(client):
    """correlate (the default choice, and numba-compiled direct_numba) and gaussian run in
    the workers, each of which builds its own plans, caches and compiled functions."""
    import os

    rng = np.random.default_rng(5)
    x = rng.standard_normal((64, 48)).astype(np.float32)
    w = rng.standard_normal((7, 6)).astype(np.float32)
    xd = da.from_array(x, chunks=(16, 20))
    for border in ("wrap", "reflect"):
        for algorithm in (None, "direct_numba"):
            want = convbench.correlate(x, w, border=border, algorithm=algorithm)
            got = client.compute(convbench.correlate(xd, w, border=border,
                                                     algorithm=algorithm)).result()
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    want = convbench.gaussian(x, 3.0, border="symmetric")
    got = client.compute(convbench.gaussian(xd, 3.0, border="symmetric")).result()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    pids = client.run(os.getpid)
    assert len(pids) == 2 and os.getpid() not in pids.values()
    # the workers kept their plans between the calls (not re-pickled per task)
    sizes = client.run(lambda: __import__("convbench.plans").plans.cache_info()["size"])
    assert all(n > 0 for n in sizes.values())


@pytest.mark.slow
def test_out_of_core_command_small(tmp_path):
    """The out-of-core command end to end on a small image (the 30000x30000 run is the
    command's default; its figures are in results/README.md)."""
    from convbench.dask_arrays import out_of_core

    figures = tmp_path / "figures.json"
    code = out_of_core.main(["--size", "3000", "--chunk", "512", "--memory-limit", "1GiB",
                             "--dir", str(tmp_path), "--json", str(figures)])
    import json

    result = json.loads(figures.read_text())
    assert code == 0 and result["verified"] and not result["worker_restarted"]
    assert not any(p.name.startswith("convbench-ooc-") for p in tmp_path.iterdir())


@pytest.mark.slow
def test_dask_suite_verifies_both_libraries():
    """The dask suite's rows on a small image: both sides verified, times and ratios."""
    from convbench.dask_arrays import bench
    from convbench.timing import Protocol

    rows = bench.measure(shape=(1024, 1024), chunk=256,
                         protocol=Protocol(warmup_s=0, sample_s=0, samples=7),
                         progress=lambda line: None)
    assert [(r["call"], r["library"]) for r in rows] == [
        (c.name, lib) for c in bench.CALLS for lib in bench.LIBRARIES]
    assert all(r["status"] == "pass" and r["median_s"] > 0 for r in rows)


def test_bench_suite_refuses_an_unknown_call_before_starting_a_cluster(capsys):
    from convbench import cli

    assert cli.main(["bench", "--suite", "dask", "--filter", "no-such-call"]) == cli.EXIT_USAGE
    assert "correlate-15x15" in capsys.readouterr().err
