"""The dispatch benchmark: what a convbench call costs over the candidate it runs.

On tiny inputs a call is mostly dispatch: validating the arguments, choosing a candidate,
checking the values, converting arrays. For each call below, timed interleaved in one
process (convbench.timing): the public function (through its plan cache), the chosen
candidate called directly on the same arrays (its native form, converted outside the timed
region), and the peers a user would otherwise call (OpenCV, scipy.ndimage, torch). The
overhead is the median over interleaved samples of (convbench - candidate) with the
candidate's function swapped for one that returns its result at once
(``dispatch_overhead``): what convbench adds, free of the candidate's own variation, which
on a shared machine is larger than the overhead. The target is <= 10 us for numpy arrays
and CPU tensors.

``convbench bench --suite dispatch`` prints the table; ``suites/dispatch.py`` tracks the
overhead in asv.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import numpy as np

from convbench.timing import Protocol, measure

TARGET_US = 10.0
PROTOCOL = Protocol(warmup_s=0.05, sample_s=0.004, samples=41)


@dataclass(frozen=True)
class Call:
    name: str
    op: str
    shapes: tuple
    kwargs: dict = field(default_factory=dict)
    peers: tuple[str, ...] = ()


CALLS = (
    Call("correlate 16x16, 3x3", "correlate", ((16, 16), (3, 3)), {},
         ("cv2.filter2D", "scipy.ndimage.correlate")),
    Call("conv (1,3,8,8) x (2,3,3,3)", "conv", ((1, 3, 8, 8), (2, 3, 3, 3)), {}, ("F.conv2d",)),
    Call("max_pool (1,4,16,16), 2", "max_pool", ((1, 4, 16, 16),), {"kernel_size": 2},
         ("F.max_pool2d",)),
    Call("depthwise conv (2,64,56,56) 3x3", "conv", ((2, 64, 56, 56), (64, 1, 3, 3)),
         {"padding": 1, "groups": 64}, ("F.conv2d",)),
    Call("1x1 conv (4,832,7,7) -> 256", "conv", ((4, 832, 7, 7), (256, 832, 1, 1)), {},
         ("F.conv2d",)),
)
LIBRARIES = ("numpy", "torch")     # numpy arrays, CPU tensors


def _peer(name: str, call: Call, arrays):
    """A zero-argument function calling the peer as its users do, on ``arrays`` (numpy)."""
    if name == "cv2.filter2D":
        import cv2

        x, w = arrays
        return lambda: cv2.filter2D(x, -1, w, borderType=cv2.BORDER_CONSTANT)
    if name == "scipy.ndimage.correlate":
        from scipy import ndimage

        x, w = arrays
        return lambda: ndimage.correlate(x, w, mode="constant")
    import torch
    import torch.nn.functional as F

    tensors = [torch.from_numpy(a) for a in arrays]
    if name == "F.conv2d":
        x, w = tensors
        kw = {k: call.kwargs[k] for k in ("padding", "groups", "stride") if k in call.kwargs}
        return lambda: F.conv2d(x, w, **kw)
    if name == "F.max_pool2d":
        (x,) = tensors
        return lambda: F.max_pool2d(x, call.kwargs["kernel_size"])
    raise ValueError(f"unknown peer {name!r}")


def _arrays(call: Call):
    rng = np.random.default_rng(0)
    return tuple(rng.standard_normal(shape).astype(np.float32) for shape in call.shapes)


def _check(got, want, what: str) -> None:
    from convbench import arrays as xp

    got, want = xp.to_numpy(got), xp.to_numpy(want)
    scale = float(np.max(np.abs(want), initial=1.0))
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-4 * scale):
        raise AssertionError(f"{what} does not agree with the candidate's direct call")


def callables(call: Call, library: str) -> tuple[dict, str]:
    """({"convbench": ..., "candidate": ..., <peer>: ...} zero-argument functions, the
    chosen candidate's name) for ``call`` on ``library`` arrays, each checked once
    against the candidate's own result (a timing is never given for a wrong result)."""
    import convbench
    from convbench import plans

    arrays = _arrays(call)
    if library == "torch":
        import torch

        given = tuple(torch.from_numpy(a) for a in arrays)
    else:
        given = arrays
    public = getattr(convbench, call.op)
    plan = plans.make(call.op, given, dict(call.kwargs))
    candidate = plan.chosen(*given)
    choice = next(c for c in plan.choices if c.candidate is candidate)
    if library == "numpy" and choice.to_native is not None:
        native = tuple(choice.to_native(a) for a in arrays)
    elif library == "torch" and choice.native_library != "torch":
        native = arrays
    else:
        native = given
    fns = {"convbench": lambda: public(*given, **call.kwargs),
           "candidate": lambda: choice.function(*native, **choice.kwargs)}
    _check(fns["convbench"](), fns["candidate"](), f"convbench.{call.op}")
    for name in call.peers:
        fns[name] = _peer(name, call, arrays)
        _check(fns[name](), fns["candidate"](), name)
    return fns, candidate.name


def measure_call(call: Call, library: str, protocol: Protocol = PROTOCOL) -> dict:
    """One row: medians (microseconds) of convbench, the chosen candidate and the peers;
    ``paired_us``, the median over interleaved samples of (convbench - candidate); and
    ``overhead_us``, the same with the candidate's function replaced by one returning its
    result at once (``dispatch_overhead``): what convbench adds, without the noise of the
    candidate's own time, which on a shared machine varies by more than the overhead."""
    fns, candidate = callables(call, library)
    timings = measure(fns, protocol)
    paired = statistics.median(
        a - b for a, b in zip(timings["convbench"].samples, timings["candidate"].samples))
    return {"call": call.name, "arrays": "numpy" if library == "numpy" else "torch (CPU)",
            "candidate": candidate,
            "convbench_us": timings["convbench"].median * 1e6,
            "candidate_us": timings["candidate"].median * 1e6,
            "paired_us": paired * 1e6,
            "overhead_us": dispatch_overhead(call, library, protocol) * 1e6,
            "peers": {name: timings[name].median * 1e6 for name in call.peers}}


def dispatch_overhead(call: Call, library: str, protocol: Protocol = PROTOCOL) -> float:
    """Seconds a convbench call adds to its candidate: the chosen candidate's function is
    swapped for one returning its (precomputed) result, then the public function and that
    function are timed interleaved; the median over samples of their difference."""
    import convbench
    from convbench import plans

    arrays = _arrays(call)
    given = arrays
    if library == "torch":
        import torch

        given = tuple(torch.from_numpy(a) for a in arrays)
    plan = plans.make(call.op, given, dict(call.kwargs))
    candidate = plan.chosen(*given)
    choice = next(c for c in plan.choices if c.candidate is candidate)
    module, name = candidate.module, candidate.reused_from or candidate.op
    real = getattr(module, name)
    native = given if choice.mode == plans.PRESENT else tuple(
        map(choice.to_native, arrays)) if choice.to_native else arrays
    result = real(*native, **choice.kwargs)

    def answer(*arrays, **kwargs):
        return result

    public = getattr(convbench, call.op)
    try:
        setattr(module, name, answer)
        plans.clear_cache()
        public(*given, **call.kwargs)
        timings = measure({"convbench": lambda: public(*given, **call.kwargs),
                           "answer": lambda: answer(*native, **choice.kwargs)}, protocol)
    finally:
        setattr(module, name, real)
        plans.clear_cache()
    return statistics.median(
        a - b for a, b in zip(timings["convbench"].samples, timings["answer"].samples))


def by_name(name: str) -> Call:
    for call in CALLS:
        if call.name == name:
            return call
    raise ValueError(f"unknown dispatch call {name!r}; accepted: {[c.name for c in CALLS]}")


def measure_all(protocol: Protocol = PROTOCOL, calls=CALLS, libraries=LIBRARIES,
                threads: int | None = 1) -> list[dict]:
    """Every call on every array kind, with ``threads`` threads in every library (one by
    default: on a shared machine, pools of idle-spinning threads time each other)."""
    from convbench.thread_settings import threads as thread_count

    with thread_count(threads, libraries=("torch", "cv2", "scipy")):
        return [measure_call(call, library, protocol) for call in calls for library in libraries]


def format_rows(rows: list[dict]) -> list[dict]:
    """Rows for a table: one per call and array kind, times in microseconds."""
    out = []
    for r in rows:
        peers = ", ".join(f"{name} {us:.1f}" for name, us in r["peers"].items())
        out.append({"call": r["call"], "arrays": r["arrays"], "candidate": r["candidate"],
                    "candidate us": f"{r['candidate_us']:.1f}",
                    "convbench us": f"{r['convbench_us']:.1f}",
                    "overhead us": f"{r['overhead_us']:.1f}",
                    "peers us": peers})
    return out


def main() -> int:
    from convbench.table import format_table

    rows = measure_all()
    print(format_table(format_rows(rows)))
    worst = max(r["overhead_us"] for r in rows)
    print(f"largest overhead {worst:.1f} us (target <= {TARGET_US:g} us)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
