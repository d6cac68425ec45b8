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


def digest(a) -> tuple:
    """A key for an array's VALUES (BLAKE2 of its bytes, plus shape and dtype): a kernel
    changed in place, same object, gets a new key; an equal copy gets the same one."""
    import hashlib

    import numpy as np

    a = np.ascontiguousarray(a)
    return hashlib.blake2b(a.tobytes(), digest_size=16).digest(), a.shape, a.dtype.str


class ValueCache:
    """A thread-safe LRU of things computed from kernel values (transforms, plans), bounded
    by entries and, when ``nbytes`` is given, by the bytes of what it keeps (a value larger
    than the whole budget is returned but never kept)."""

    def __init__(self, entries: int, max_bytes: float = float("inf"), nbytes=None):
        import collections

        self.entries, self.max_bytes, self.nbytes = entries, max_bytes, nbytes or (lambda v: 0)
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key, make):
        """The value for ``key``, from the cache or ``make()`` (outside the lock)."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
        value = make()
        if self.nbytes(value) <= self.max_bytes:
            with self._lock:
                self._items[key] = value
                self._items.move_to_end(key)
                total = sum(self.nbytes(v) for v in self._items.values())
                while len(self._items) > self.entries or total > self.max_bytes:
                    _, dropped = self._items.popitem(last=False)
                    total -= self.nbytes(dropped)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0

    def info(self) -> dict:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "entries": len(self._items),
                    "bytes": sum(self.nbytes(v) for v in self._items.values())}


SCRATCH_BYTES = 256 * 2**20   # largest scratch buffer kept per (owner, slot) and thread
_scratch = threading.local()


def scratch(owner: str, slot: str, shape, dtype):
    """An uninitialised array of ``shape``: the calling thread's buffer ``slot`` of
    ``owner`` (a module name), reused between calls and grown when too small. For
    image-sized temporaries: a fresh one per call is page-faulted in every time. Never
    hand it to a caller; release_scratch(owner) frees it."""
    import math

    import numpy as np

    buffers = getattr(_scratch, "buffers", None)
    if buffers is None:
        buffers = _scratch.buffers = {}
    n = math.prod(shape)
    flat = buffers.get((owner, slot))
    if flat is None or flat.dtype != dtype or flat.size < n:
        flat = np.empty(n, dtype)
        if flat.nbytes <= SCRATCH_BYTES:
            buffers[(owner, slot)] = flat
        else:
            buffers.pop((owner, slot), None)
    return flat[:n].reshape(shape)


def release_scratch(owner: str) -> None:
    """Forget the calling thread's scratch buffers of ``owner``."""
    buffers = getattr(_scratch, "buffers", None) or {}
    for key in [k for k in buffers if k[0] == owner]:
        del buffers[key]
