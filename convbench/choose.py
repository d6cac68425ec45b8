"""The default choice of algorithm when the caller gives no ``algorithm=``.

A short, explicit rule table read top to bottom; the first candidate that is available
and supports the call wins. The order follows measurements on this project's 2-core
machines (PEERS.md, results/README.md): OpenCV's filter2D is the fastest peer for 2-D
images from 3x3 to 15x15 (and uses its DFT path beyond); scipy.ndimage is the general
N-D fallback; torch keeps tensors on their device. shift_add_numpy needs nothing but
numpy and handles every case, so it closes every list.
"""
from __future__ import annotations

from convbench import registry

# (op, caller's array library) -> candidates in order of preference
RULES = {
    ("correlate", "numpy"): ("filter2d_opencv", "ndimage_scipy", "conv_torch", "shift_add_numpy"),
    ("correlate", "torch"): ("conv_torch", "filter2d_opencv", "ndimage_scipy", "shift_add_numpy"),
    ("correlate", "cupy"): ("filter2d_opencv", "ndimage_scipy", "shift_add_numpy"),
}
for _op in ("conv", "conv_transpose", "conv_grad_input", "conv_grad_weight", "conv_grad_bias"):
    RULES[(_op, "numpy")] = ("conv_torch", "im2col_numpy")
    RULES[(_op, "torch")] = ("conv_torch", "im2col_numpy")
for _op in ("max_pool", "avg_pool", "lp_pool", "max_pool_grad", "avg_pool_grad", "lp_pool_grad"):
    RULES[(_op, "numpy")] = ("pool_torch", "strided_numpy")
    RULES[(_op, "torch")] = ("pool_torch", "strided_numpy")
RULES.update({("convolve", lib): names for (op, lib), names in list(RULES.items())
              if op == "correlate"})


def preference(op: str, library: str) -> tuple[str, ...]:
    try:
        return RULES[(op, library)]
    except KeyError:
        raise ValueError(f"no default algorithm for op {op!r} on {library} arrays") from None


def choose(spec, library: str = "numpy"):
    """The first candidate in the rule's order that is available and supports ``spec``."""
    reasons = []
    for name in preference(spec.op, library):
        candidate = registry.get(spec.op, name)
        reason = candidate.unavailable() or candidate.supports(spec)
        if reason is None:
            return candidate
        reasons.append(f"{name}: {reason}")
    raise ValueError(f"no algorithm can run {spec.id}: " + "; ".join(reasons))
