"""What the Triton candidates of every family share: the interpreter switch, tensors,
the border map as a jitted function, the cval scalar and the 64-bit offset test."""
from __future__ import annotations

import functools
import os

import numpy as np

BORDER_CODES = {"constant": 0, "edge": 1, "symmetric": 2, "reflect": 3, "wrap": 4}


def interpreting() -> bool:
    """Triton's interpreter (TRITON_INTERPRET=1): kernels run on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def to_native(a):
    """A torch tensor of ``a``: on the GPU, or on the CPU under the interpreter."""
    import torch

    a = np.ascontiguousarray(a) if a.strides and min(a.strides) < 0 else a
    t = torch.from_numpy(a)
    return t if interpreting() else t.cuda()


@functools.lru_cache(maxsize=None)
def border_source_kernel():
    """The jitted border map (built on first use: importing this module never imports
    triton). Triton resolves the names a kernel uses in its module's globals, so a module
    whose kernels call it publishes it there under the name ``border_source``."""
    import triton
    import triton.language as tl

    globals().update(triton=triton, tl=tl)

    @triton.jit
    def border_source(i, n, BORDER: tl.constexpr, OFF: tl.constexpr):
        """refimpl.pad.source_index for padded positions i (any integer tensor) on an axis
        of length n; 'constant' gives a clamped, always valid index (the caller masks).
        OFF != 0 plants an off-by-one in the reflect map (verifier tests only)."""
        if BORDER == 2:            # symmetric, period 2n
            p = 2 * n
            m = ((i % p) + p) % p
            j = tl.where(m < n, m, p - 1 - m)
        elif BORDER == 3:          # reflect, period 2n - 2 (n = 1: every index is 0)
            p = tl.maximum(2 * n - 2, 1)
            m = ((i % p) + p) % p
            j = tl.where(m < n, m, p - m - OFF)
        elif BORDER == 4:          # wrap
            j = ((i % n) + n) % n
        else:                      # edge, and constant's safe address
            j = tl.minimum(tl.maximum(i, 0), n - 1)
        return j

    return border_source


@functools.lru_cache(maxsize=64)
def scalar(value: float, dtype, device):
    """cval as a one-element device tensor of ``dtype`` (a float kernel argument would be
    float32), made once: no host-to-device copy inside a timed call."""
    import torch

    return torch.full((1,), value, dtype=dtype, device=device)


def max_offset(t) -> int:
    """The largest element offset of tensor ``t``: from 2**31 - 1 on, 64-bit offsets."""
    return sum((n - 1) * abs(s) for n, s in zip(t.shape, t.stride()))
