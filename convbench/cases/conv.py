"""Cases of the layer form: verification set and network-layer workloads."""
from __future__ import annotations

SUITES: dict = {}
