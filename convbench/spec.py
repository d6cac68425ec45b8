"""The spec: one frozen description of an operation call, and its string id.

A spec holds the operation name, the shapes and dtypes of its array arguments and its
normalised keyword arguments. Its output shape comes from the op table (which asks
``refimpl.geometry``), and its id is the pytest id, the asv parameter and the results key.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np


def _freeze(value):
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class Spec:
    op: str
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def make(cls, op: str, shapes, dtypes, **kwargs) -> "Spec":
        """Validate and normalise; raises ValueError/TypeError naming the bad argument."""
        from convbench.ops import get_op

        operation = get_op(op)
        shapes = tuple(tuple(int(n) for n in s) for s in shapes)
        dtypes = tuple(np.dtype(d).name if d != "bfloat16" else d for d in dtypes)
        params = operation.normalize(shapes, dtypes, kwargs)
        spec = cls(op, shapes, dtypes, tuple(sorted((k, _freeze(v)) for k, v in params.items())))
        spec.output_shape()  # validates sizes before any work
        return spec

    @property
    def kwargs(self) -> dict:
        return dict(self.params)

    @property
    def operation(self):
        from convbench.ops import get_op

        return get_op(self.op)

    def output_shape(self) -> tuple[int, ...]:
        return self.operation.output_shape(self)

    @property
    def dtype(self) -> str:
        """The dtype of the first array argument (the image or activation)."""
        return self.dtypes[0]

    @property
    def id(self) -> str:
        return self.operation.spec_id(self)

    def memory_parts(self) -> dict[str, int]:
        """Bytes one call holds at once, by part (arrays, output, temporaries); shapes only."""
        return self.operation.memory_parts(self)

    def check_memory(self, template=None) -> None:
        """Refuse, before any work, a call that cannot fit in the memory free where it runs
        (the host, or the GPU that holds ``template``, a tensor of the call)."""
        parts = self.memory_parts()
        need = sum(parts.values())
        free, where = _free_memory(template)
        if free is not None and need > free:
            detail = ", ".join(f"{name} {_size(n)}" for name, n in parts.items() if n)
            raise ValueError(f"{self.op} would need about {_size(need)} ({detail}); {where} "
                             f"has {_size(free)} available")

    def replace(self, **kwargs) -> "Spec":
        params = {**self.kwargs, **kwargs}
        return Spec.make(self.op, self.shapes, self.dtypes, **params)

    def __str__(self) -> str:
        return self.id


def _size(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _free_memory(template) -> tuple[int | None, str]:
    """(bytes free, where) on the device of ``template``: a CUDA tensor's GPU, else the host
    (what the kernel says a new allocation gets, else the physical memory)."""
    from convbench import arrays as xp
    from convbench import machine

    lib = xp.library_of(template) if template is not None else "numpy"
    try:
        if lib == "torch" and template.device.type == "cuda":
            import torch

            return torch.cuda.mem_get_info(template.device)[0], f"GPU {template.device}"
        if lib == "cupy":
            import cupy

            return cupy.cuda.runtime.memGetInfo()[0], "the GPU"
    except Exception:  # a device that cannot say: no refusal on a guess
        return None, ""
    free = machine.available_memory()
    if free is None:
        try:
            free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            return None, ""
    return free, "this machine"
