"""The timing protocol, one for every backend.

For each function: warm up by time, calibrate a loop count so that one sample lasts at
least ``sample_s``, then collect ``samples`` (>= 7) samples. Functions compared in one run
are interleaved sample by sample, so a slow phase of a shared machine hits all of them.
Reported: median, IQR and min of the per-call time. GPU work is synchronised inside the
timed region (or timed with device events where the candidate gives them).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

MIN_SAMPLES = 7


@dataclass
class Timing:
    median: float
    iqr: float
    min: float
    samples: list[float] = field(default_factory=list)   # per-call seconds, one per sample
    loops: int = 1

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Protocol:
    warmup_s: float = 0.05      # run at least this long (and at least once) before timing
    sample_s: float = 0.02      # one sample lasts at least this long (loops calibrated)
    samples: int = MIN_SAMPLES
    max_s: float = 20.0         # per function: fewer loops (never fewer samples) above this

    def __post_init__(self):
        if self.samples < MIN_SAMPLES:
            raise ValueError(f"samples must be >= {MIN_SAMPLES}, got {self.samples}")


QUICK = Protocol(warmup_s=0.02, sample_s=0.01)
FULL = Protocol(warmup_s=0.2, sample_s=0.05, samples=15)


def _clock(fn: Callable[[], object], loops: int) -> float:
    start = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - start) / loops


def calibrate(fn: Callable[[], object], protocol: Protocol) -> int:
    """Warm up for ``warmup_s``, then the loop count whose sample lasts ``sample_s``."""
    started = time.perf_counter()
    per_call = _clock(fn, 1)
    while time.perf_counter() - started < protocol.warmup_s:
        per_call = min(per_call, _clock(fn, 1))
    loops = max(1, math.ceil(protocol.sample_s / max(per_call, 1e-9)))
    # keep the whole measurement of one function under max_s
    budget = protocol.max_s / protocol.samples
    return max(1, min(loops, int(budget / max(per_call, 1e-9))))


def summarize(per_call: list[float], loops: int) -> Timing:
    q25, q50, q75 = np.percentile(per_call, [25, 50, 75])
    return Timing(float(q50), float(q75 - q25), float(min(per_call)), list(per_call), loops)


def measure(fns: dict[str, Callable[[], object]], protocol: Protocol = QUICK) -> dict[str, Timing]:
    """Time each zero-argument function, interleaved; returns per-name Timing."""
    loops = {name: calibrate(fn, protocol) for name, fn in fns.items()}
    per_call: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(protocol.samples):
        for name, fn in fns.items():
            per_call[name].append(_clock(fn, loops[name]))
    return {name: summarize(per_call[name], loops[name]) for name in fns}
