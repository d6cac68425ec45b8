"""Dtype facts shared by the API, verification and tolerances (the semantics themselves,
``result_dtype`` and ``round_saturate``, are the oracle's: refimpl/dtypes.py)."""
from __future__ import annotations

import numpy as np

from refimpl.dtypes import result_dtype, round_saturate

__all__ = ["result_dtype", "saturate_cast", "UNIT_ROUNDOFF", "ACCUMULATION"]

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
