"""Layer-form ops: conv, conv_transpose, conv_grad_input, conv_grad_weight, conv_grad_bias."""
from __future__ import annotations

OPS: dict = {}
