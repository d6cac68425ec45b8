"""The case catalogue: verification cases and benchmark workloads, one id string each.

A case is a spec plus what fills its arrays. Each op family writes its case builders in
its own module (correlate.py, conv.py, pool.py, gaussian.py); an op's record
(convbench/ops) names the builder of each suite it is in, and ``all_suites()`` merges them.
The suites:

    small     verification: odd/even kernels, kernel larger than the image, 1-pixel
              images, every border and padding, origins, integer and float16 images,
              non-contiguous inputs, non-finite values
    quick     the README's main job: a few real workloads, under a minute on 2 cores
    seed      the workloads this project started from (CONTRIBUTING.md, "Workloads")
    images    the image-filtering sweep (sizes x kernel sizes x borders x kernels)
    real      real photographs with the seed kernels
    layers    DeepBench, ResNet-50, VGG-16 and convnet-benchmarks layers (N scaled for
              CPU) and pooling shapes
    bfloat16  verification of the layer form and pooling on bfloat16 tensors (apart from
              small: numpy has no bfloat16, so only candidates taking tensors run them)
"""
from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from convbench.data import make_array
from convbench.spec import Spec


@dataclass(frozen=True)
class Case:
    spec: Spec
    data: tuple[str, ...] = ()          # recipe per array; missing entries are "random"
    strided: bool = False               # pass non-contiguous views
    name: str = ""                      # workload name, e.g. "seed-fft-1k"
    tags: tuple[str, ...] = field(default=())

    @property
    def id(self) -> str:
        parts = [self.name] if self.name else []
        parts.append(self.spec.id)
        recipes = [r for r in self.data if r != "random"]
        if recipes:
            parts.append("+".join(recipes))
        if self.strided:
            parts.append("strided")
        return "-".join(parts)

    def recipe(self, i: int) -> str:
        return self.data[i] if i < len(self.data) else "random"

    @property
    def seed(self) -> int:
        return int.from_bytes(hashlib.sha256(self.id.encode()).digest()[:4], "little")

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The inputs, the same on every call and every machine: fresh copies (a candidate
        that writes into its inputs cannot spoil the next one), generated once."""
        view = tuple(slice(None, None, 2) for _ in self.spec.shapes[0]) if self.strided else ()
        out = []
        for base in _generated(self):
            copy = base.copy()
            out.append(copy[view[:copy.ndim]] if self.strided else copy)
        return tuple(out)

    @property
    def nonfinite(self) -> bool:
        return "nonfinite" in self.data or "infpair" in self.data

    def __str__(self) -> str:
        return self.id


@functools.lru_cache(maxsize=2)
def _generated(case: Case) -> tuple[np.ndarray, ...]:
    """The arrays of ``case`` (twice the size per axis when strided: views are taken)."""
    rng = np.random.default_rng(case.seed)
    scale = 2 if case.strided else 1
    return tuple(make_array(case.recipe(i), tuple(scale * n for n in shape), dtype, rng)
                 for i, (shape, dtype) in enumerate(zip(case.spec.shapes, case.spec.dtypes)))


def make_case(op: str, shapes, dtypes, data=(), strided=False, name="", tags=(), **kwargs) -> Case:
    """A case from shapes, dtypes (one per array, or one for all) and the op's keywords."""
    if isinstance(dtypes, str):
        dtypes = (dtypes,) * len(shapes)
    return Case(Spec.make(op, shapes, dtypes, **kwargs), tuple(data), strided, name, tuple(tags))


def all_suites() -> dict[str, dict]:
    """suite name -> op -> case builder, from each op record's ``suites``."""
    from convbench.ops import all_ops

    merged: dict[str, dict] = {}
    for op, record in all_ops().items():
        for name, builder in record.suites.items():
            merged.setdefault(name, {})[op] = builder
    return merged


def suite(name: str, op: str | None = None) -> list[Case]:
    """The cases of suite ``name`` (for one op, or every op the suite covers)."""
    suites = all_suites()
    if name not in suites:
        raise ValueError(f"unknown suite {name!r}; accepted: {', '.join(suites)}")
    builders = suites[name]
    ops = [op] if op is not None else list(builders)
    out = []
    for o in ops:
        if o in builders:
            out.extend(builders[o](o))
    return out


def estimate_bytes(case: Case) -> int:
    """Bytes of the inputs and the float64 output a run of this case holds at least."""
    spec = case.spec
    inputs = sum(math.prod(s) * np.dtype(d if d != "bfloat16" else "float16").itemsize
                 for s, d in zip(spec.shapes, spec.dtypes))
    strided = 2 ** len(spec.shapes[0]) if case.strided else 1  # views into arrays 2x per axis
    return int(inputs * strided + math.prod(spec.output_shape()) * 8)
