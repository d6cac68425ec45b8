"""Settings the harness passes to candidates (candidates never import convbench)."""
from __future__ import annotations

import concurrent.futures
import os
import threading

_threads: int | None = None


def set_threads(n: int | None) -> None:
    global _threads
    _threads = n


def threads() -> int:
    """Worker threads a candidate may use (FFT workers, its library's pool)."""
    return _threads or os.cpu_count() or 1


_pool = {"executor": None, "workers": 0}
_pool_lock = threading.Lock()


def run_jobs(jobs, workers: int) -> None:
    """Run the callables ``jobs`` on ``workers`` threads (the calling one included).

    Jobs are handed out one at a time from a shared counter and the calling thread works
    too, waiting only for jobs already taken: a worker whose core is busy with another
    process holds nothing up. (OpenMP-style barriers, numba's prange and OpenBLAS's own
    hand-offs, measured 2-100x slower medians on a loaded 2-core machine.) The pool is
    shared by every candidate, grown on demand, never shrunk: idle threads cost nothing.
    The first exception a job raises is raised here after every taken job finished."""
    workers = min(workers, len(jobs))
    if workers <= 1:
        for job in jobs:
            job()
        return
    with _pool_lock:
        if _pool["workers"] < workers - 1:
            if _pool["executor"] is not None:
                _pool["executor"].shutdown(wait=False)
            _pool["executor"] = concurrent.futures.ThreadPoolExecutor(workers - 1, "candidates")
            _pool["workers"] = workers - 1
        executor = _pool["executor"]
    lock = threading.Lock()
    state = {"next": 0, "done": 0}
    finished = threading.Event()
    errors = []

    def work():
        while True:
            with lock:
                i = state["next"]
                if i >= len(jobs):
                    return
                state["next"] = i + 1
            try:
                jobs[i]()
            except BaseException as exc:  # surfaced in the calling thread
                errors.append(exc)
            with lock:
                state["done"] += 1
                if state["done"] == len(jobs):
                    finished.set()

    for _ in range(workers - 1):
        executor.submit(work)
    work()
    finished.wait()
    if errors:
        raise errors[0]
