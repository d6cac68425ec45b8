"""The importable library: ``convbench.correlate(...)`` and friends.

Each call builds a spec (which validates every argument before any work), picks a
candidate (``algorithm=`` or the default choice of convbench.choose), runs it on the
caller's arrays and returns the caller's kind of array (numpy in, numpy out; torch in,
torch out on the same device).
"""
from __future__ import annotations

import numpy as np

from convbench import arrays as xp
from convbench import registry
from convbench.choose import choose
from convbench.spec import Spec


def _as_arrays(arrays, names):
    lib = xp.common_library(arrays, names)
    if lib == "numpy":
        arrays = tuple(None if a is None else np.asarray(a) for a in arrays)
    return lib, arrays


def apply(op: str, arrays: tuple, names: tuple, kwargs: dict, algorithm: str | None = None):
    """Validate, choose a candidate, run it; the result in the caller's array library."""
    lib, arrays = _as_arrays(arrays, names)
    present = [a for a in arrays if a is not None]
    spec = Spec.make(op, [tuple(a.shape) for a in present], [xp.dtype_name(a) for a in present],
                     **kwargs)
    if algorithm is None:
        candidate = choose(spec, lib)
    else:
        candidate = registry.get(op, algorithm)
        reason = candidate.unavailable() or candidate.supports(spec)
        if reason:
            raise ValueError(f"algorithm={algorithm!r} cannot run this call: {reason}")
    if lib == "numpy" or candidate.module.LIBRARY == lib:
        native = tuple(candidate.to_native(a) if lib == "numpy" else a for a in present)
        out = spec.operation.call(candidate.function(), native, spec)
    else:  # e.g. torch tensors into a numpy-based algorithm: round trip through numpy
        native = tuple(candidate.to_native(xp.to_numpy(a)) for a in present)
        out = spec.operation.call(candidate.function(), native, spec)
    return _to_caller(out, lib, present[0])


def _to_caller(out, lib: str, template):
    if xp.library_of(out) == lib:
        return out
    return xp.like(xp.to_numpy(out), template)


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None,
              algorithm=None):
    """Correlate ``x`` with ``w`` (no kernel flip): ``y[i] = sum_j w[j] * xp[i + j]``.

    x, w: arrays of the same rank (numpy, or torch tensors on any device).
    border: constant (with cval), edge, symmetric, reflect, wrap (numpy.pad's names;
        aliases such as 'nearest', 'mirror', 'circular' accepted).
    padding: 'same' (output shape = x's, anchor at k//2 + origin, as scipy.ndimage),
        'valid' or 'full' (scipy.signal).
    out_dtype: None gives a floating result (integer images never wrap); an integer dtype
        rounds half to even and saturates.
    algorithm: a candidate name from ``convbench list`` (default: convbench.choose's rule).
    """
    return apply("correlate", (x, w), ("x", "w"),
                 dict(border=border, cval=cval, padding=padding, origin=origin, out_dtype=out_dtype),
                 algorithm)


def convolve(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None,
             algorithm=None):
    """Convolve ``x`` with ``w`` (kernel reversed): equals scipy.ndimage.convolve for every
    border after name translation, even kernels included. Arguments as ``correlate``."""
    return apply("convolve", (x, w), ("x", "w"),
                 dict(border=border, cval=cval, padding=padding, origin=origin, out_dtype=out_dtype),
                 algorithm)
