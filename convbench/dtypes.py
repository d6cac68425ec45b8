"""Dtype facts shared by the API, verification and tolerances (the semantics themselves,
``result_dtype`` and ``round_saturate``, are the oracle's: refimpl/dtypes.py)."""
from __future__ import annotations

import numpy as np

from refimpl.dtypes import result_dtype, round_saturate

__all__ = ["result_dtype", "saturate_cast", "UNIT_ROUNDOFF", "ACCUMULATION", "float_result"]

# Unit roundoff u = 2**-p (p = significand bits, implicit bit included).
UNIT_ROUNDOFF = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24,
                 "float64": 2.0**-53, "tf32": 2.0**-11}

# A result narrower than float32 must still be accumulated in float32 at least: the
# bound for float16/bfloat16 results uses float32 accumulation plus one final rounding.
ACCUMULATION = {"float16": "float32", "bfloat16": "float32", "float32": "float32",
                "float64": "float64"}


def saturate_cast(y, out_dtype):
    """The oracle's rounding applied to any floating result (numpy semantics)."""
    return round_saturate(np.asarray(y), out_dtype)


def float_result(names, dtypes) -> str:
    """The result dtype's name for floating arrays of the layer form and pooling: numpy's
    promotion, or 'bfloat16' when every array is a bfloat16 tensor. numpy has no bfloat16
    to promote to (and torch's layers refuse the mix), so bfloat16 beside another dtype
    is a TypeError naming the arrays."""
    if "bfloat16" not in dtypes:
        return np.result_type(*dtypes).name
    if set(dtypes) != {"bfloat16"}:
        given = ", ".join(f"{n} {d}" for n, d in zip(names, dtypes))
        raise TypeError(f"bfloat16 arrays take no other dtype beside them ({given}): convert "
                        "them all to bfloat16, or all to float32")
    return "bfloat16"


def bfloat16_values(a) -> np.ndarray:
    """``a`` rounded to bfloat16 (to nearest, ties to even), held in float32: the values a
    bfloat16 tensor made of ``a`` holds, for arrays that must stay numpy (cases, oracles)."""
    bits = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    keep = (bits >> 16) & 1                          # ties go to the even upper half
    rounded = ((bits + 0x7FFF + keep) >> 16) << 16
    nan = np.isnan(np.asarray(a, dtype=np.float32))
    out = rounded.astype(np.uint32).view(np.float32)
    return np.where(nan, np.float32(np.nan), out)
