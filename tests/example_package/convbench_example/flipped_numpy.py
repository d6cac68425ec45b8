# flipped_numpy: PLANTED WRONG, on purpose. windowed_numpy with the kernel reversed on
# every axis: a convolution where a correlation is asked for, the classic mix-up (right
# only for symmetric kernels). It exists so that tests/test_outside.py can check that
# convbench rejects a wrong candidate from another package; the package's pyproject.toml
# does not declare it.
from __future__ import annotations

import numpy as np

from convbench_example.windowed_numpy import (DEVICE, ERROR, EXACT_INT_BITS, LIBRARY, NONFINITE,
                                              supports)
from convbench_example.windowed_numpy import correlate as _windowed

__all__ = ["LIBRARY", "DEVICE", "ERROR", "NONFINITE", "EXACT_INT_BITS", "supports", "correlate"]


def correlate(x, w, **kwargs):
    return _windowed(x, np.flip(w), **kwargs)
