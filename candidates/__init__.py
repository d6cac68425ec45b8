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

A header comment says the algorithm, where it wins, where it does not apply and its
numerical behaviour. Candidates never import convbench; the harness passes thread counts
through ``candidates.runtime``.
"""
