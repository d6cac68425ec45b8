"""The spec: one frozen description of an operation call, and its string id.

A spec holds the operation name, the shapes and dtypes of its array arguments and its
normalised keyword arguments. Its output shape comes from the op table (which asks
``refimpl.geometry``), and its id is the pytest id, the asv parameter and the results key.
"""
from __future__ import annotations

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

    def replace(self, **kwargs) -> "Spec":
        params = {**self.kwargs, **kwargs}
        return Spec.make(self.op, self.shapes, self.dtypes, **params)

    def __str__(self) -> str:
        return self.id
