"""Fast implementations to verify and time: one folder per operation, one module per
``<algorithm>_<library>``.

A candidate module defines (and imports its own library lazily, inside functions):

    LIBRARY   the package it needs ("numpy", "scipy", "cv2", "torch", "cupy", ...)
    DEVICE    "cpu" or "gpu"
    ERROR     error model of convbench.tolerance ("direct", "fft", "exact"), or a
              function spec -> model name
    supports(spec) -> None | str      None when it computes this case, else the reason
    <op>(x, w, ..., **kwargs)         the op's own signature (the oracle's), any dtype the
                                      case has; returns its native array
    to_native(a) (optional)           converts a numpy input outside the timed region
    NONFINITE (optional, False)       True when NaN/Inf in x or w land where the oracle's
                                      IEEE sum puts them (0 * Inf = NaN: every tap applied)
    EXACT_INT_BITS (optional, 0)      integer image and kernel with an integer out_dtype:
                                      exact while every partial sum stays below 2**bits
                                      (24: float32 sums, 53: float64, 63: int64), or a
                                      function spec -> bits

A candidate is never given values it does not declare (convbench.values); verification
holds it to what it declares.

A header comment says the algorithm, where it wins, where it does not apply and its
numerical behaviour. Candidates never import convbench; the harness passes thread counts
through ``candidates.runtime``.
"""
