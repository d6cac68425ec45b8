"""convbench: the reference, the proving ground and the fast library for convolutions.

    import convbench
    y = convbench.correlate(x, w, border="symmetric")            # picks an algorithm
    y = convbench.convolve(x, w, border="wrap", algorithm="conv_torch")
    p = convbench.plan("correlate", x, w)                      # choose once, call often
    report = convbench.verify("correlate", my_correlate)         # bring your own kernel
    print(report); assert report.passed

Semantics are defined by the float64 oracles in ``refimpl``.
"""
from convbench.api import (
    avg_pool, batch_norm, conv, conv_grad_bias, conv_grad_input, conv_grad_weight, conv_transpose, convolve,
    correlate, gaussian, lp_pool, max_pool, plan)
from convbench.thread_settings import threads
from convbench.verification import Report, verify

__version__ = "0.1.0"

__all__ = ["correlate", "convolve", "gaussian", "conv", "conv_transpose", "conv_grad_input", "conv_grad_weight",
           "conv_grad_bias", "max_pool", "avg_pool", "lp_pool", "batch_norm", "plan", "threads", "verify", "Report", "__version__"]
