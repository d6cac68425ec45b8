"""The one place that changes thread counts: ``convbench.threads(n)``.

A plain library call changes no global setting: candidates read the count they may use
from ``candidates.runtime.threads()`` and leave torch, OpenCV, numba and BLAS/OpenMP at
whatever the caller set. Inside ``with convbench.threads(n):`` every one of them (the ones
already imported, and those named in ``libraries``) runs with ``n`` threads, and on exit,
an exception included, each is back at its value from before; contexts nest.
"""
from __future__ import annotations

import contextlib
import importlib
import numbers
import os
import sys

from candidates import runtime


@contextlib.contextmanager
def threads(n: int | None = None, *, libraries=()):
    """Use ``n`` threads (None or 0: every core) in every library that has a pool (BLAS and
    OpenMP through threadpoolctl, torch, OpenCV, numba, and the candidates' own workers);
    restore them afterwards. ``libraries``: module names imported first where installed:
    a library first imported inside the context keeps its own count, so the harness names
    the libraries of the candidates it will run. Yields ``n``."""
    if n is not None and (not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0):
        raise ValueError(f"threads: n must be a whole number >= 0 or None (0 and None: every core), got {n!r}")
    n = int(n or os.cpu_count() or 1)
    for name in libraries:
        try:
            importlib.import_module(name)
        except Exception:  # not installed (or broken): its candidates report that themselves
            pass
    torch, cv2, numba = (sys.modules.get(name) for name in ("torch", "cv2", "numba"))
    saved = {}
    stack = contextlib.ExitStack()
    try:
        # torch's count is read before threadpoolctl lowers OpenMP's: torch reads it there
        if torch is not None:
            saved["torch"] = torch.get_num_threads()
        if cv2 is not None:
            saved["cv2"] = cv2.getNumThreads()
        saved["runtime"] = runtime._threads
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            stack.enter_context(threadpool_limits(limits=n))
        # numba before torch: numba's OpenMP layer shares the runtime torch reads its count from
        if numba is not None:
            saved["numba"] = numba.get_num_threads()
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        if torch is not None:
            torch.set_num_threads(n)
        if cv2 is not None:
            cv2.setNumThreads(n)
        runtime.set_threads(n)
        yield n
    finally:
        stack.close()
        if "numba" in saved:
            numba.set_num_threads(saved["numba"])
        if "torch" in saved:
            torch.set_num_threads(saved["torch"])
        if "cv2" in saved:
            cv2.setNumThreads(saved["cv2"])
        if "runtime" in saved:
            runtime.set_threads(saved["runtime"])


def requested() -> int | None:
    """The count of the innermost ``threads()`` context, None outside any."""
    return runtime._threads


def libraries_of(candidates) -> set[str]:
    """The libraries (``LIBRARY``) of registry candidates, for ``threads(libraries=...)``."""
    out = set()
    for candidate in candidates:
        try:
            library = getattr(candidate.module, "LIBRARY", None) if candidate.module_path else None
        except Exception:  # a module that cannot be imported: its row reports it
            continue
        if library:
            out.add(library)
    return out
