"""The ``dask`` suite: convbench on dask arrays against dask-image's ndfilters, on one
dask.distributed LocalCluster of worker processes and the same chunks.

    convbench bench --suite dask                 # prints medians, ratios, verification

Both sides filter the same persisted array (in the workers' memory) and each timed call
writes its result into the workers' memory (``persist`` and wait), so the time is the
filtering and the halo exchange, not a transfer to this process. Before timing, each
result is checked at sampled points (corners and edges of every border zone, both sides
of chunk seams, random interior points) against the float64 oracle (the op record's
``oracle_at``) under the default's contract, CONTRACT_FACTOR * gamma_K(u) * (|x| (*) |w|);
a row that fails is not timed.

dask-image runs scipy.ndimage per chunk through dask's map_overlap; its border names are
scipy.ndimage's, translated from ours in one place (refimpl.pad.LIBRARY_NAMES).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

SHAPE, CHUNK = (4096, 4096), 1024
BORDER = "symmetric"          # scipy.ndimage's and dask-image's default ('reflect' there)
SEED = 0


@dataclass(frozen=True)
class Call:
    name: str
    op: str
    kwargs: tuple             # convbench's keywords, (name, value) pairs
    kernel: tuple | None      # kernel shape (random normal, seeded), None for gaussian


CALLS = (
    Call("correlate-15x15", "correlate", (("border", BORDER),), (15, 15)),
    Call("gaussian-sigma5", "gaussian", (("sigma", 5.0), ("border", BORDER)), None),
)
LIBRARIES = ("convbench", "dask-image")


def by_name(name: str) -> Call:
    for call in CALLS:
        if call.name == name:
            return call
    raise ValueError(f"unknown dask call {name!r}; the calls: {[c.name for c in CALLS]}")


def start_cluster(n_workers: int = 2, memory_limit="auto"):
    """A LocalCluster of worker processes (one thread each) and its client."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           memory_limit=memory_limit, dashboard_address=None, silence_logs=40)
    return cluster, Client(cluster)


def image(client, shape=SHAPE, chunk=CHUNK):
    """A seeded random float32 image, generated and kept in the workers' memory."""
    import dask.array as da
    from distributed import wait

    x = da.random.default_rng(SEED).standard_normal(shape, chunks=chunk, dtype=np.float32)
    x = x.persist()
    wait(x)
    return x


def kernel(call: Call):
    if call.kernel is None:
        return None
    return np.random.default_rng(SEED + 1).standard_normal(call.kernel).astype(np.float32)


def lazy(call: Call, library: str, x):
    """The lazy result of ``call`` on the dask array ``x`` by ``library``."""
    kw = dict(call.kwargs)
    if library == "convbench":
        import convbench

        if call.op == "gaussian":
            return convbench.gaussian(x, kw.pop("sigma"), **kw)
        return getattr(convbench, call.op)(x, kernel(call), **kw)
    if library != "dask-image":
        raise ValueError(f"library must be one of {LIBRARIES}, got {library!r}")
    from dask_image import ndfilters

    from refimpl.pad import library_border

    mode = library_border(kw.pop("border"), "scipy.ndimage")
    if call.op == "gaussian":
        return ndfilters.gaussian_filter(x, kw.pop("sigma"), mode=mode, truncate=4.0)
    return getattr(ndfilters, call.op)(x, kernel(call), mode=mode)


def run(client, y):
    """Compute ``y`` into the workers' memory and drop it (one timed call)."""
    from distributed import wait

    y = y.persist()
    wait(y)
    del y


def sample_points(shape, halo, chunk, n_random: int = 24, seed: int = SEED):
    """Output indices to verify: the corners and an inner point of every border-zone
    combination, both sides of each chunk seam, and random interior points."""
    rng = np.random.default_rng(seed)
    per_axis = []
    for n, (lo, hi) in zip(shape, halo):
        picks = {0, max(lo - 1, 0), lo, n - hi - 1, n - hi, n - 1}
        picks |= {s + d for s in range(chunk, n, chunk) for d in (-1, 0)}
        per_axis.append(sorted(p for p in picks if 0 <= p < n))
    points = {(int(i), int(j)) for i in per_axis[0][::2] for j in per_axis[1][::2]}
    points |= {(int(i), int(j)) for i, j in zip(per_axis[0], per_axis[1][::-1])}
    points |= {tuple(int(rng.integers(0, n)) for n in shape) for _ in range(n_random)}
    return sorted(points)


def verify(call: Call, x_host: np.ndarray, got_at: dict) -> tuple[bool, str]:
    """``got_at``: index -> value. Each within the contract bound of the oracle."""
    from convbench import values
    from convbench.spec import Spec
    from convbench.tolerance import bound

    w = kernel(call)
    kw = dict(call.kwargs)
    shapes = [x_host.shape] + ([w.shape] if w is not None else [])
    dtypes = [x_host.dtype.name] + ([w.dtype.name] if w is not None else [])
    spec = Spec.make(call.op, shapes, dtypes, **kw)
    op = spec.operation
    arrays = (x_host,) if w is None else (x_host, w)
    absolute = tuple(np.abs(a) for a in arrays)
    index = list(got_at)
    ref = np.array([op.oracle_at(spec, arrays, i) for i in index])
    absref = np.array([op.oracle_at(spec, absolute, i) for i in index])
    tol = values.CONTRACT_FACTOR * bound("direct", result_dtype=op.result_dtype(spec), ref=ref,
                                         absref=absref, terms=op.terms(spec))
    got = np.array([got_at[i] for i in index], dtype=np.float64)
    err = np.abs(got - ref)
    worst = float(np.max(err / np.maximum(tol, 1e-300)))
    return bool((err <= tol).all()), f"{len(index)} points, worst error/bound {worst:.2g}"


def halo(call: Call, shape=SHAPE) -> tuple:
    """The (low, high) halo per axis, from the op's record: where the border zones are."""
    from convbench.spec import Spec

    shapes = [shape] + ([call.kernel] if call.kernel else [])
    spec = Spec.make(call.op, shapes, ["float32"] * len(shapes), **dict(call.kwargs))
    if call.op == "gaussian":
        return tuple((r, r) for r in spec.operation.radii(spec))
    return tuple(spec.operation.pads(spec))


def measure(calls=CALLS, shape=SHAPE, chunk=CHUNK, protocol=None, progress=print):
    """Verify, then time, each call by both libraries, interleaved, on one cluster.
    Rows: call, library, status, detail, median_s, iqr_s, ratio (convbench / dask-image)."""
    from convbench import timing

    protocol = protocol or timing.Protocol(warmup_s=0.0, sample_s=0.0, samples=7, max_s=600)
    cluster, client = start_cluster()
    rows = []
    try:
        x = image(client, shape, chunk)
        x_host = x.compute()
        threads = client.run(_worker_threads)
        for call in calls:
            fns, checks = {}, {}
            points = sample_points(shape, halo(call, shape), chunk)
            for library in LIBRARIES:
                y = lazy(call, library, x)
                run(client, y)                      # warm: imports, plans, compilation
                rows_i, cols_i = (np.array(a) for a in zip(*points))
                got = y.vindex[rows_i, cols_i].compute()
                ok, detail = verify(call, x_host, dict(zip(points, got.tolist())))
                checks[library] = (ok, detail)
                if ok:
                    fns[library] = (lambda y=y: run(client, y))
                progress(f"{call.name} {library}: {'verified' if ok else 'FAILED'} ({detail})")
            timed = timing.measure(fns, protocol) if fns else {}
            base = timed.get("dask-image")
            for library in LIBRARIES:
                t = timed.get(library)
                ok, detail = checks[library]
                rows.append({
                    "call": call.name, "library": library,
                    "status": "pass" if ok else "FAIL", "detail": detail,
                    "median_s": t.median if t else math.nan, "iqr_s": t.iqr if t else math.nan,
                    "ratio": t.median / base.median if t and base else math.nan,
                    "shape": "x".join(map(str, shape)), "chunks": chunk,
                    "workers": f"{len(threads)} processes x 1 thread",
                    "worker_threads": sorted(set(threads.values()))[0] if threads else "",
                })
    finally:
        client.close()
        cluster.close()
    return rows


def _worker_threads() -> str:
    """The thread counts a worker's libraries would use (what each chunk call may take)."""
    from candidates import runtime

    parts = [f"cpus {os.cpu_count()}", f"candidates {runtime.threads()}",
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}"]
    try:
        import cv2

        parts.append(f"OpenCV {cv2.getNumThreads()}")
    except ImportError:
        pass
    return ", ".join(parts)


def format_rows(rows) -> list[dict]:
    return [{"call": r["call"], "library": r["library"], "status": r["status"],
             "median s": f"{r['median_s']:.3f}", "iqr s": f"{r['iqr_s']:.3f}",
             "ratio": f"{r['ratio']:.3f}", "verified": r["detail"]} for r in rows]
