"""GPU timing: device events around each sample, warm-up by time, optional L2 flush, device
memory peak, and host<->device transfers timed apart from the kernels.

The protocol is convbench.timing's (warm up by time, >= 7 samples, median / IQR / min,
candidates interleaved sample by sample), with the clock moved onto the device:

    per sample:  [flush L2: zero a 256 MiB buffer]            (not timed)
                 start.record(); call() x loops; end.record()  (events on the current stream)
                 end.synchronize(); per call = elapsed / loops

With the L2 flush (the default, as triton.testing.do_bench does) every sample is one call
on a cold L2 and the number of samples grows for short calls (up to ``MAX_SAMPLES``);
without it the loop count is calibrated as on the CPU, so back-to-back calls share a warm L2.
Events time the stream from the first launch to the last kernel's end: a launch-bound
call (the host slower than the device) shows up as gaps inside that interval, so the
median is the wall time the device needed, not the sum of kernel times. The host's own
wall time per sample (synchronised) is kept too (``host_median``).

Also reported per candidate and case: the device memory peak of one call (torch's caching
allocator statistics, or CuPy's memory pool high-water mark), and the seconds to copy the
inputs to the device (``h2d_s``, the candidate's ``to_native``) and the output back
(``d2h_s``); the kernel time excludes both (the seed's 9000x9000 FFT took 23.5 s with
transfers and about 1 s without).

torch and CuPy are imported only when a GPU candidate is timed; triton kernels run on torch
tensors, so they use torch's events and allocator. ``Backend`` is the seam the tests use to
run this protocol on a CPU with a fake device.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

from convbench.timing import QUICK, Protocol, Timing, summarize

L2_FLUSH_BYTES = 256 * 2**20
MAX_SAMPLES = 200
TRANSFER_REPEATS = 3


@dataclass
class GpuTiming(Timing):
    """A Timing whose samples come from device events, with the GPU-only facts."""
    clock: str = "cuda-events"
    l2_flush: bool = True
    host_median: float = math.nan          # synchronised wall time per call (host view)
    device_peak_bytes: float = math.nan    # allocator high-water mark during one call
    device_extra_bytes: float = math.nan   # that peak minus what was allocated before it

    def extra(self) -> dict:
        """The columns a result row gets beside median/iqr/min/loops/samples."""
        return {"clock": self.clock, "l2_flush": self.l2_flush, "host_median": self.host_median,
                "device_peak_bytes": self.device_peak_bytes,
                "device_extra_bytes": self.device_extra_bytes}


# ---------------------------------------------------------------------------------------
# Backends: events, synchronisation, L2 flush and memory statistics of one library
# ---------------------------------------------------------------------------------------

class Backend:
    """What the protocol needs from a device library (torch or CuPy)."""

    name = "?"

    def synchronize(self) -> None:
        raise NotImplementedError

    def event(self):
        raise NotImplementedError

    def record(self, event) -> None:
        raise NotImplementedError

    def elapsed_s(self, start, end) -> float:
        """Seconds between two recorded events (waits for ``end``)."""
        raise NotImplementedError

    def flush_l2(self) -> None:
        raise NotImplementedError

    def memory_begin(self) -> float:
        """Reset the high-water mark; returns the bytes allocated now."""
        raise NotImplementedError

    def memory_peak(self) -> float:
        raise NotImplementedError


class TorchBackend(Backend):
    name = "torch"

    def __init__(self):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("convbench.gpu: torch sees no CUDA device")
        self.torch = torch
        self._flush = None

    def synchronize(self):
        self.torch.cuda.synchronize()

    def event(self):
        return self.torch.cuda.Event(enable_timing=True)

    def record(self, event):
        event.record()

    def elapsed_s(self, start, end):
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    def flush_l2(self):
        if self._flush is None:
            self._flush = self.torch.empty(L2_FLUSH_BYTES // 4, dtype=self.torch.int32,
                                           device="cuda")
        self._flush.zero_()

    def memory_begin(self):
        self.synchronize()
        self.torch.cuda.reset_peak_memory_stats()
        return float(self.torch.cuda.memory_allocated())

    def memory_peak(self):
        self.synchronize()
        return float(self.torch.cuda.max_memory_allocated())


class CupyBackend(Backend):
    name = "cupy"

    def __init__(self):
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("convbench.gpu: CuPy sees no CUDA device")
        self.cupy = cupy
        self._flush = None

    def synchronize(self):
        self.cupy.cuda.get_current_stream().synchronize()

    def event(self):
        return self.cupy.cuda.Event()

    def record(self, event):
        event.record()

    def elapsed_s(self, start, end):
        end.synchronize()
        return self.cupy.cuda.get_elapsed_time(start, end) / 1e3

    def flush_l2(self):
        if self._flush is None:
            self._flush = self.cupy.empty(L2_FLUSH_BYTES // 4, dtype=self.cupy.int32)
        self._flush.fill(0)

    def memory_begin(self):
        # the pool keeps blocks freed during the call: after free_all_blocks, its total is
        # the high-water mark of what the call held at once (rounded to the pool's blocks)
        self.synchronize()
        pool = self.cupy.get_default_memory_pool()
        pool.free_all_blocks()
        return float(pool.used_bytes())

    def memory_peak(self):
        self.synchronize()
        return float(self.cupy.get_default_memory_pool().total_bytes())


_BACKENDS: dict[str, Backend] = {}


def backend(library: str) -> Backend:
    """The backend of a candidate's LIBRARY ('cupy'; 'torch' and 'triton' use torch's)."""
    kind = "cupy" if library == "cupy" else "torch"
    if kind not in _BACKENDS:
        _BACKENDS[kind] = CupyBackend() if kind == "cupy" else TorchBackend()
    return _BACKENDS[kind]


# ---------------------------------------------------------------------------------------
# The protocol
# ---------------------------------------------------------------------------------------

@dataclass
class Bound:
    """One candidate's call on one case, ready to time (returns its device output)."""
    call: Callable[[], object]
    device: Backend


@dataclass
class _State:
    bound: Bound
    loops: int = 1
    samples: int = 0
    per_call: list = field(default_factory=list)
    host: list = field(default_factory=list)


def _one(bound: Bound, loops: int, flush: bool) -> tuple[float, float]:
    """(device seconds per call, host seconds per call) of one sample."""
    dev = bound.device
    if flush:
        dev.flush_l2()
    start, end = dev.event(), dev.event()
    began = time.perf_counter()
    dev.record(start)
    out = None
    for _ in range(loops):
        out = bound.call()
    dev.record(end)
    seconds = dev.elapsed_s(start, end)
    host = time.perf_counter() - began
    del out
    return seconds / loops, host / loops


def _warm_up(bound: Bound, protocol: Protocol) -> float:
    """Run for ``warmup_s`` (at least twice: the first call may compile, autotune or plan);
    returns the fastest device time of one call seen."""
    started = time.perf_counter()
    best = math.inf
    calls = 0
    while calls < 2 or time.perf_counter() - started < protocol.warmup_s:
        best = min(best, _one(bound, 1, False)[0])
        calls += 1
    return best


def measure(bounds: dict[str, Bound], protocol: Protocol = QUICK,
            flush_l2: bool = True) -> dict[str, GpuTiming]:
    """Time each bound call with device events, interleaved; per-name GpuTiming."""
    states = {name: _State(b) for name, b in bounds.items()}
    budget = protocol.samples * protocol.sample_s       # timed seconds per candidate
    for state in states.values():
        per_call = max(_warm_up(state.bound, protocol), 1e-7)
        if flush_l2:
            state.loops = 1
            state.samples = min(max(protocol.samples, math.ceil(budget / per_call)), MAX_SAMPLES)
        else:
            loops = math.ceil(protocol.sample_s / per_call)
            state.loops = max(1, min(loops, int(protocol.max_s / protocol.samples / per_call)))
            state.samples = protocol.samples
    rounds = max((s.samples for s in states.values()), default=0)
    for i in range(rounds):
        for state in states.values():
            if i < state.samples:
                device_s, host_s = _one(state.bound, state.loops, flush_l2)
                state.per_call.append(device_s)
                state.host.append(host_s)
    out = {}
    for name, state in states.items():
        t = summarize(state.per_call, state.loops)
        peak, extra = peak_bytes(state.bound)
        out[name] = GpuTiming(t.median, t.iqr, t.min, t.samples, t.loops, l2_flush=flush_l2,
                              host_median=statistics.median(state.host),
                              device_peak_bytes=peak, device_extra_bytes=extra)
    return out


def peak_bytes(bound: Bound) -> tuple[float, float]:
    """(allocator high-water mark during one call, that minus what was allocated before)."""
    dev = bound.device
    before = dev.memory_begin()
    out = bound.call()
    peak = dev.memory_peak()
    del out
    return peak, peak - before


def h2d_seconds(to_native: Callable, arrays, device: Backend,
                repeats: int = TRANSFER_REPEATS) -> float:
    """Median seconds to copy ``arrays`` to the device with the candidate's ``to_native``
    (synchronised; pageable host memory, as a caller's numpy arrays are)."""
    times = []
    for _ in range(repeats):
        device.synchronize()
        began = time.perf_counter()
        natives = [to_native(a) for a in arrays]
        device.synchronize()
        times.append(time.perf_counter() - began)
        del natives
    return statistics.median(times)


def d2h_seconds(out, device: Backend, repeats: int = TRANSFER_REPEATS) -> float:
    """Median seconds to copy a device result back to a numpy array."""
    from convbench.arrays import to_numpy

    times = []
    for _ in range(repeats):
        device.synchronize()
        began = time.perf_counter()
        to_numpy(out)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------
# Harness entry points (convbench/bench.py)
# ---------------------------------------------------------------------------------------

def bind(candidate, case, native) -> Bound:
    """The candidate's call on ``native`` inputs, not synchronised (the events are)."""
    spec = case.spec
    fn = candidate.function()
    op = spec.operation
    return Bound(lambda: op.call(fn, native, spec), backend(candidate.module.LIBRARY))


def transfers(candidate, case, out) -> dict:
    """{'h2d_s': inputs to the device, 'd2h_s': ``out`` back}, timed apart from the kernel."""
    device = backend(candidate.module.LIBRARY)
    return {"h2d_s": h2d_seconds(candidate.to_native, case.arrays(), device),
            "d2h_s": d2h_seconds(out, device)}


def measure_candidate(candidate, case, protocol: Protocol = QUICK, flush_l2: bool = True) -> dict:
    """Verify-free helper for one candidate on one case: timing, memory and transfers."""
    from convbench.verification import native_inputs

    native = native_inputs(candidate, case)
    bound = bind(candidate, case, native)
    timing = measure({candidate.name: bound}, protocol, flush_l2)[candidate.name]
    out = bound.call()
    row = {"median": timing.median, "iqr": timing.iqr, "min": timing.min,
           "loops": timing.loops, "samples": timing.samples, **timing.extra()}
    row.update(transfers(candidate, case, out))
    return row
