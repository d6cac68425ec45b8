"""Larger than memory, for real: filter a zarr image on disk with workers whose memory
limit is far below the image's size, write the result to zarr, report peak worker memory.

    python -m convbench.dask_arrays.out_of_core                  # 30000x30000 float32, 15x15
    python -m convbench.dask_arrays.out_of_core --size 40000 --chunk 4096 --op gaussian

Steps: (1) the input is generated chunk by chunk by the workers straight into zarr (seeded
normal float32; never whole in any memory), (2) ``convbench.correlate`` (or ``gaussian``)
on ``da.from_zarr`` of it, stored with ``to_zarr`` by the same workers, with a progress bar
(distributed.progress), (3) the output is checked at sampled points (corners, edges, both
sides of chunk seams, random points) against the float64 oracle evaluated on the windows
read from the input zarr, under the default's contract. Peak memory is each worker
process's resident set size, sampled every 0.1 s from this process (psutil), during the
filtering and in all; a worker restarted by its nanny (over its limit) is reported.
Needs about twice the image's size on disk (``--dir``; removed afterwards unless ``--keep``).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

GIB = 2 ** 30


class PeakMemory:
    """The largest resident set size of each process in ``pids``, sampled in a thread."""

    def __init__(self, pids, interval: float = 0.1):
        import psutil

        self.processes = {pid: psutil.Process(pid) for pid in pids}
        self.peak = {pid: 0 for pid in pids}
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            for pid, process in self.processes.items():
                try:
                    self.peak[pid] = max(self.peak[pid], process.memory_info().rss)
                except Exception:     # the process ended (a nanny restart): kept as measured
                    pass
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def sampled_check(zin, zout, w, op: str, kwargs: dict, chunk: int, n_random: int = 40,
                  seed: int = 0):
    """(passed, points, worst error/bound): the output at sampled points against the oracle
    on windows read from the input (refimpl's border rule and pointwise oracle)."""
    from convbench import values
    from convbench.ops import get_op
    from convbench.spec import Spec
    from convbench.tolerance import bound
    from refimpl.correlate import correlate_at
    from refimpl.pad import source_index

    shape = tuple(zin.shape)
    if op == "gaussian":
        spec = Spec.make("gaussian", [shape], [zin.dtype.name], **kwargs)
        w = get_op("gaussian").kernel(spec)
        pads = tuple((r, r) for r in get_op("gaussian").radii(spec))
    else:
        spec = Spec.make(op, [shape, w.shape], [zin.dtype.name, w.dtype.name], **kwargs)
        pads = tuple(spec.operation.pads(spec))
        if op == "convolve":
            w = w[::-1, ::-1]
    border, cval = spec.kwargs["border"], spec.kwargs["cval"]
    rng = np.random.default_rng(seed)
    per_axis = []
    for n, (lo, hi) in zip(shape, pads):
        picks = {0, lo, n - hi - 1, n - 1} | {s + d for s in range(chunk, n, chunk) for d in (-1, 0)}
        per_axis.append(sorted(p for p in picks if 0 <= p < n))
    points = {(i, j) for i in per_axis[0][::3] for j in per_axis[1][::3]}
    points |= {tuple(int(rng.integers(0, n)) for n in shape) for _ in range(n_random)}
    points = sorted(points)
    got = np.asarray(zout.vindex[tuple(np.array(a) for a in zip(*points))], dtype=np.float64)
    ref, scale = [], []
    for index in points:
        src = [[source_index(i + t - lo, n, border) for t in range(k)]
               for i, (lo, _), n, k in zip(index, pads, shape, w.shape)]
        rows = [s if s is not None else 0 for s in src[0]]
        cols = [s if s is not None else 0 for s in src[1]]
        window = np.asarray(zin.oindex[rows, cols], dtype=np.float64)
        window[[s is None for s in src[0]], :] = cval
        window[:, [s is None for s in src[1]]] = cval
        ref.append(correlate_at(window, w, (0, 0), padding="valid"))
        scale.append(correlate_at(np.abs(window), np.abs(w), (0, 0), padding="valid"))
    ref, scale = np.array(ref), np.array(scale)
    tol = values.CONTRACT_FACTOR * bound("direct", result_dtype=spec.operation.result_dtype(spec),
                                         ref=ref, absref=scale, terms=spec.operation.terms(spec))
    err = np.abs(got - ref)
    return bool((err <= tol).all()), len(points), float(np.max(err / tol))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m convbench.dask_arrays.out_of_core",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=30000, help="image side (default 30000)")
    p.add_argument("--chunk", type=int, default=2048, help="chunk side (default 2048)")
    p.add_argument("--op", choices=("correlate", "gaussian"), default="correlate")
    p.add_argument("--kernel", type=int, default=15, help="correlate's kernel side (default 15)")
    p.add_argument("--sigma", type=float, default=5.0, help="gaussian's sigma (default 5)")
    p.add_argument("--border", default="reflect", help="border (default reflect)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-limit", default="1.5GiB", help="per worker (default 1.5GiB)")
    p.add_argument("--dir", default=None, help="where the zarr stores go (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the zarr stores")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args(argv)

    import dask.array as da
    from distributed import Client, LocalCluster, progress, wait

    import convbench

    root = tempfile.mkdtemp(prefix="convbench-ooc-", dir=args.dir)
    in_path, out_path = os.path.join(root, "input.zarr"), os.path.join(root, "output.zarr")
    shape, chunks = (args.size, args.size), (args.chunk, args.chunk)
    nbytes = args.size ** 2 * 4
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                           memory_limit=args.memory_limit, dashboard_address=None,
                           silence_logs=40)
    client = Client(cluster)
    figures = {"shape": list(shape), "chunks": list(chunks), "dtype": "float32",
               "image_gib": nbytes / GIB, "op": args.op, "border": args.border,
               "workers": args.workers, "memory_limit": args.memory_limit}
    try:
        pids = client.run(os.getpid)
        print(f"{args.workers} workers, {args.memory_limit} each; image {nbytes / GIB:.2f} GiB "
              f"float32 {shape}, chunks {chunks}; stores under {root}", file=sys.stderr)
        with PeakMemory(pids.values()) as whole:
            started = time.perf_counter()
            x = da.random.default_rng(0).standard_normal(shape, chunks=chunks, dtype=np.float32)
            print("writing the input, chunk by chunk:", file=sys.stderr)
            stored = client.compute(x.to_zarr(in_path, compute=False))
            progress(stored)
            wait(stored)
            figures["generate_s"] = time.perf_counter() - started

            x = da.from_zarr(in_path)
            if args.op == "gaussian":
                kwargs = {"sigma": args.sigma, "border": args.border}
                w = None
                y = convbench.gaussian(x, args.sigma, border=args.border)
            else:
                kwargs = {"border": args.border}
                w = np.random.default_rng(1).standard_normal((args.kernel,) * 2).astype(np.float32)
                y = convbench.correlate(x, w, border=args.border)
            with PeakMemory(pids.values()) as filtering:
                started = time.perf_counter()
                print(f"\n{args.op} into {out_path}:", file=sys.stderr)
                stored = client.compute(y.to_zarr(out_path, compute=False))
                progress(stored)
                wait(stored)
                figures["filter_s"] = time.perf_counter() - started
        restarted = set(client.run(os.getpid).values()) != set(pids.values())
        figures["peak_worker_gib_filter"] = max(filtering.peak.values()) / GIB
        figures["peak_worker_gib_all"] = max(whole.peak.values()) / GIB
        figures["worker_restarted"] = restarted
        figures["filter_mpix_s"] = args.size ** 2 / 1e6 / figures["filter_s"]

        import zarr

        passed, points, worst = sampled_check(zarr.open_array(in_path, mode="r"),
                                              zarr.open_array(out_path, mode="r"), w, args.op,
                                              kwargs, args.chunk)
        figures.update(verified=passed, points=points, worst_error_over_bound=worst)
    finally:
        client.close()
        cluster.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print(f"{args.op} on {args.size}x{args.size} float32 ({nbytes / GIB:.2f} GiB, chunks "
          f"{args.chunk}): filter {figures['filter_s']:.1f} s ({figures['filter_mpix_s']:.1f} "
          f"Mpixel/s), generate {figures['generate_s']:.1f} s; peak worker memory "
          f"{figures['peak_worker_gib_filter']:.2f} GiB while filtering, "
          f"{figures['peak_worker_gib_all']:.2f} GiB in all (limit {args.memory_limit}, "
          f"{args.workers} workers){'; a worker was restarted' if restarted else ''}; "
          f"verified at {points} points: {'pass' if passed else 'FAIL'} "
          f"(worst error/bound {worst:.2g})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0 if passed and not restarted else 1


if __name__ == "__main__":
    sys.exit(main())
