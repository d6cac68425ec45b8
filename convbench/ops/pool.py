"""Pooling ops: max_pool, avg_pool, lp_pool and their gradients."""
from __future__ import annotations

OPS: dict = {}
