"""Cases of pooling: verification set and pooling workloads."""
from __future__ import annotations

SUITES: dict = {}
