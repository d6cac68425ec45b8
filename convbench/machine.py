"""Machine metadata recorded with every run (thread control: convbench.thread_settings)."""
from __future__ import annotations

import os
import platform
import sys
import time

LIBRARIES = ("numpy", "scipy", "torch", "cv2", "pandas", "numba", "cupy", "triton", "skimage")


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


def available_memory(now: float | None = None) -> int | None:
    """Bytes the kernel says a new allocation can get without swapping (read at most every
    0.1 s; ``now``: time.monotonic() when the caller has it already)."""
    if now is None:
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

