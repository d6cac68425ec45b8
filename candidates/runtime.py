"""Settings the harness passes to candidates (candidates never import convbench)."""
from __future__ import annotations

import os

_threads: int | None = None


def set_threads(n: int | None) -> None:
    global _threads
    _threads = n


def threads() -> int:
    """Worker threads a candidate may use (FFT workers, its library's pool)."""
    return _threads or os.cpu_count() or 1
