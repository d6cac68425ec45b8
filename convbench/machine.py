"""Thread control and machine metadata recorded with every run."""
from __future__ import annotations

import contextlib
import os
import platform
import sys
import time

import candidates.runtime

# OpenBLAS workers spin for a while after a call and steal a core from the next library
# timed (DESIGN.md, Timing); a short timeout keeps interleaved timings honest. Effective
# only when set before numpy loads, so the CLI entry point sets it first.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

LIBRARIES = ("numpy", "scipy", "torch", "cv2", "pandas", "numba", "cupy", "triton", "skimage")


@contextlib.contextmanager
def threads(n: int | None):
    """Use ``n`` threads in every library that has a pool (BLAS, OpenMP, torch, OpenCV,
    numba, scipy.fft workers via candidates.runtime); restore afterwards."""
    n = n or os.cpu_count() or 1
    saved = {}
    stack = contextlib.ExitStack()
    try:
        # read torch's and OpenCV's counts before threadpoolctl lowers OpenMP's (torch reads it)
        if "torch" in sys.modules:
            saved["torch"] = sys.modules["torch"].get_num_threads()
        if "cv2" in sys.modules:
            saved["cv2"] = sys.modules["cv2"].getNumThreads()
        try:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=n))
        except ImportError:
            pass
        # numba first: its OpenMP layer shares the OpenMP runtime torch reads its count from
        if "numba" in sys.modules:
            numba = sys.modules["numba"]
            saved["numba"] = numba.get_num_threads()
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        if "torch" in saved:
            sys.modules["torch"].set_num_threads(n)
        if "cv2" in saved:
            sys.modules["cv2"].setNumThreads(n)
        saved["runtime"] = candidates.runtime._threads
        candidates.runtime.set_threads(n)
        yield n
    finally:
        stack.close()
        if "numba" in saved:
            sys.modules["numba"].set_num_threads(saved["numba"])
        if "torch" in saved:
            sys.modules["torch"].set_num_threads(saved["torch"])
        if "cv2" in saved:
            sys.modules["cv2"].setNumThreads(saved["cv2"])
        candidates.runtime.set_threads(saved.get("runtime"))


def _cpu_model() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    have = set(line.split(":", 1)[1].split())
                    flags = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16",
                                         "amx_tile") if f in have]
    except OSError:
        pass
    return model, flags


def versions() -> dict[str, str | None]:
    """Versions of the libraries already imported (importing torch just to ask is slow)."""
    out = {}
    for name in LIBRARIES:
        module = sys.modules.get(name)
        out[name] = getattr(module, "__version__", None) if module else None
    return out


def gpu_info() -> dict | None:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1),
            "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
            "capability": f"{props.major}.{props.minor}"}


def metadata(n_threads: int | None = None) -> dict:
    model, flags = _cpu_model()
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = None
    return {
        "hostname": platform.node(),
        "cpu": model,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "memory_gb": round(mem, 1) if mem else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "threads": n_threads,
        "versions": versions(),
        "gpu": gpu_info(),
    }


_MEMINFO_MAX_AGE_S = 0.1      # a library call's refusal check must not read /proc each time
_meminfo = {"at": -1.0, "value": None}


def available_memory() -> int | None:
    """Bytes the kernel says a new allocation can get without swapping (read at most every
    0.1 s)."""
    now = time.monotonic()
    if now - _meminfo["at"] > _MEMINFO_MAX_AGE_S:
        _meminfo.update(at=now, value=_read_available_memory())
    return _meminfo["value"]


def _read_available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None

