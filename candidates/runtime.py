"""What candidates share at run time: the thread count they may use, a worker pool,
kernel caches, scratch buffers, border extension (candidates never import convbench).

The count is set only by convbench.threads(n) (convbench/thread_settings.py); a candidate
reads it and never changes another library's global setting.
"""
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


def _forget_pool_in_child() -> None:
    """A forked child inherits the pool's executor without its threads: start afresh."""
    global _pool_lock
    _pool.update(executor=None, workers=0)
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


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


_blas = {"controller": None}   # threadpoolctl's controller, made once (it scans the libraries)


def run_blas_jobs(jobs, workers: int) -> None:
    """run_jobs with BLAS pinned to one thread meanwhile (restored after): jobs that are
    small matrix products each, where BLAS's own threads would only contend with the
    workers (5-10x slower on a 2-core machine)."""
    from threadpoolctl import ThreadpoolController

    if _blas["controller"] is None:
        _blas["controller"] = ThreadpoolController()
    with _blas["controller"].limit(limits=1, user_api="blas"):
        run_jobs(jobs, workers)


class KernelCache:
    """A thread-safe LRU of things computed from a kernel's VALUES (transforms, plans),
    bounded by entries and, when ``nbytes`` is given, by the bytes it keeps (a value larger
    than the whole budget is returned but never kept).

    The key is the kernel's shape, dtype and a CRC-32 of a sample of its values (plus the
    caller's extra key); a hit is served only after a bitwise comparison with the kept copy
    of the kernel, so a kernel changed in place (same array object) is never served a stale
    value, and an equal copy is a hit. The comparison reads the kernel once at memory speed
    (~0.03 ms for 256x128x3x3 float32, where a BLAKE2 digest of its bytes took ~1 ms)."""

    def __init__(self, entries: int, max_bytes: float = float("inf"), nbytes=None):
        import collections

        self.entries, self.max_bytes = entries, max_bytes
        self.nbytes = nbytes or (lambda value: 0)
        self._items: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def _size(self, item) -> int:
        kept, value = item
        return kept.nbytes + self.nbytes(value)

    def get(self, w, extra, make):
        """The value for kernel ``w`` and ``extra`` (hashable), cached or ``make()``."""
        import zlib

        import numpy as np

        w = np.ascontiguousarray(w)
        flat = w.reshape(-1)
        sample = np.ascontiguousarray(flat[::max(1, flat.size // 4096)])
        key = (w.shape, w.dtype.str, zlib.crc32(sample.view(np.uint8)), extra)
        with self._lock:
            item = self._items.get(key)
            if item is not None and np.array_equal(item[0].view(np.uint8), w.view(np.uint8)):
                self._items.move_to_end(key)
                self.hits += 1
                return item[1]
            self.misses += 1
        kept = w.copy()
        kept.flags.writeable = False
        value = make()
        item = (kept, value)
        if self._size(item) <= self.max_bytes:
            with self._lock:
                self._items[key] = item
                self._items.move_to_end(key)
                total = sum(self._size(i) for i in self._items.values())
                while len(self._items) > self.entries or total > self.max_bytes:
                    _, dropped = self._items.popitem(last=False)
                    total -= self._size(dropped)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0

    def info(self) -> dict:
        with self._lock:
            return {"hits": self.hits, "misses": self.misses, "entries": len(self._items),
                    "bytes": sum(self._size(i) for i in self._items.values())}


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


def _nothing_to_add(pads) -> bool:
    """``pads`` is (lo, hi) pairs of zeros (np.pad's other forms, an int, are not)."""
    try:
        return not any(lo or hi for lo, hi in pads)
    except TypeError:
        return False


def extend(x, pads, border: str, cval=0.0, xp=None):
    """x extended by ``pads`` ((lo, hi) per axis) under the canonical ``border`` (whose
    names are numpy.pad's modes; ``cval`` fills 'constant'), as a new array. ``xp``: the
    array module of x when not numpy (cupy): there the border is a gather of the border's
    source indices, axis by axis, and x itself comes back when nothing is added."""
    import numpy as np

    if xp is None or xp is np:
        if _nothing_to_add(pads):
            return x.copy()         # what np.pad gives, without its ~30 us of set-up
        if border == "constant":
            return np.pad(x, pads, mode="constant", constant_values=cval)
        return np.pad(x, pads, mode=border)
    if _nothing_to_add(pads):
        return x
    if border == "constant":
        return xp.pad(x, pads, mode="constant", constant_values=cval)
    from refimpl.pad import source_indices

    for axis, (n, (lo, hi)) in enumerate(zip(x.shape, pads)):
        if lo or hi:
            x = xp.take(x, xp.asarray(source_indices(range(-lo, n + hi), n, border)), axis=axis)
    return x


def pad_into(out, x, pads, border: str, cval=0.0):
    """Write x extended by ``pads`` ((lo, hi) per axis) under the border rule into ``out``
    (numpy.pad's meaning, corners included; padding wider than x repeats the rule) and
    return it: the centre is copied (and converted), then each axis's border slabs are
    gathered from the centre, axis by axis over the already extended earlier axes, as
    numpy.pad does. ``out`` may be a reused scratch buffer: no allocation of image size."""
    import numpy as np

    from refimpl.pad import source_index

    centre = tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape, pads))
    np.copyto(out[centre], x, casting="unsafe")
    for axis, ((lo, hi), n) in enumerate(zip(pads, x.shape)):
        if lo == 0 and hi == 0:
            continue
        region = list(slice(None) for _ in range(axis)) + [slice(None)] + list(centre[axis + 1:])
        for positions in (range(-lo, 0), range(n, n + hi)):
            if not len(positions):
                continue
            target = list(region)
            target[axis] = slice(positions[0] + lo, positions[-1] + lo + 1)
            if border == "constant":
                out[tuple(target)] = cval
                continue
            sources = [source_index(p, n, border) + lo for p in positions]
            out[tuple(target)] = np.take(out[tuple(region)], sources, axis=axis)
    return out
