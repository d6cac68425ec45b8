"""Float64 oracles: slow, readable definitions of every convolution-family operation.

numpy only. Each function's docstring gives its defining formula and a doctest.
"""
from refimpl.pad import BORDERS, canonical_border, pad

__all__ = ["BORDERS", "canonical_border", "pad"]
