"""What a call's values allow: the default's accuracy contract, checked per call.

The default choice (``algorithm=None``) keeps one promise on every input, whatever its
values::

    |y - y_ref| <= CONTRACT_FACTOR * gamma_K(u) * (|x| (*) |w|)  (+ the final rounding of a
                                                                  float16 result)

the elementwise bound of a direct sum of K products in the result's precision u (the one
verification uses for direct algorithms; convbench.tolerance), times a stated factor.
NaN and Inf land exactly where the float64 oracle puts them (IEEE arithmetic: 0 * Inf is
NaN, +Inf - Inf is NaN), and integer images with an integer kernel and an integer
``out_dtype`` are exact.

Algorithms meet it in three ways:

* direct sums meet it always (their model is 'direct' or 'exact');
* algorithms with a weaker bound (FFT: normwise, c u log2(L) ||x||_2 ||w||_2; the
  recursive Gaussian: a fraction of max |x|) are certified per call: the same algorithm
  computes |x| (*) |w|, which bounds the direct scale from below at every output, and the
  algorithm runs only when its bound is within the contract there (``certify``). A 1e12
  spike in an image of ones fails this (the FFT's bound there is ~1e5 where the answer is
  1); a random image with a 31x31 kernel on 1024^2 passes with a margin of ~3;
* candidates declare what they do with special values (module constants, read through
  convbench.registry.Candidate): ``NONFINITE = True`` when NaN/Inf propagate as in the
  oracle (verification holds them to it), and ``EXACT_INT_BITS`` = b when integer sums
  whose every partial sum stays below 2**b are exact (24: float32 accumulation, 53:
  float64, 63: int64). A candidate is never given values it does not declare.

``accuracy="normwise"`` lets a caller take any verified algorithm under its own stated
bound (FFT, the IIR Gaussian, TF32, Winograd) without the certification.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from convbench import arrays as xp
from convbench.tolerance import gamma, normwise_part

CONTRACT_FACTOR = 64
ACCURACY = ("elementwise", "normwise")
CONTRACT_MODELS = frozenset({"direct", "exact"})     # meet the contract on every input
CERTIFIED_MODELS = frozenset({"fft", "iir"})          # meet it when ``certify`` says so


@dataclass(frozen=True)
class Facts:
    """What the choice reads from a call's values."""

    finite: bool = True              # no NaN or Inf in any array
    int_bound: int | None = None     # exact-integer calls: max |padded x| * sum |w|


def check_accuracy(accuracy) -> str:
    if accuracy not in ACCURACY:
        raise ValueError(f"accuracy must be one of {ACCURACY}, got {accuracy!r}")
    return accuracy


def exact_integer(spec) -> bool:
    """Integer image, integer kernel and integer out_dtype: the result must be exact."""
    out = spec.kwargs.get("out_dtype")
    return (len(spec.dtypes) >= 2 and out is not None and np.dtype(out).kind in "iu"
            and all(d != "bfloat16" and np.dtype(d).kind in "iu" for d in spec.dtypes[:2]))


def all_finite(a) -> bool:
    lib = xp.library_of(a)
    if lib == "numpy":
        a = np.asarray(a)
        return a.dtype.kind not in "fc" or bool(np.isfinite(a).all())
    if lib == "torch":
        if not (a.dtype.is_floating_point or a.dtype.is_complex):
            return True
        import torch

        return bool(torch.isfinite(a).all())
    import cupy

    return a.dtype.kind not in "fc" or bool(cupy.isfinite(a).all())


def integer_bound(spec, x, w) -> int:
    """max |x padded| * sum |w| in Python integers: no partial sum of the direct algorithm
    can be larger."""
    x, w = xp.to_numpy(x), xp.to_numpy(w)
    big = max(int(x.max()), -int(x.min())) if x.size else 0
    if spec.kwargs.get("border") == "constant":
        big = max(big, math.ceil(abs(spec.kwargs.get("cval", 0.0))))
    return big * sum(abs(v) for v in w.ravel().tolist())


def facts(spec, arrays) -> Facts:
    present = [a for a in arrays if a is not None]
    finite = all(all_finite(a) for a in present)
    bound = integer_bound(spec, present[0], present[1]) if exact_integer(spec) else None
    return Facts(finite, bound)


def ineligible(candidate, spec, found: Facts, accuracy: str = "normwise") -> str | None:
    """Why ``candidate`` must not be given these values (None when it may)."""
    if not found.finite and not candidate.nonfinite:
        return "the arrays hold NaN or Inf, whose placement this algorithm does not reproduce"
    if found.int_bound is not None:
        bits = candidate.exact_int_bits(spec)
        if found.int_bound >= 2**bits:
            return (f"integer sums up to {found.int_bound:.3g} are not exact in its "
                    f"accumulator ({bits} bits)")
    return model_ineligible(candidate, spec, accuracy)


def model_ineligible(candidate, spec, accuracy: str) -> str | None:
    """Why ``candidate``'s error model does not meet ``accuracy`` whatever the values (None
    when it does, or when a per-call certificate decides)."""
    model = candidate.error_model(spec)
    if accuracy == "elementwise" and model not in CONTRACT_MODELS | CERTIFIED_MODELS:
        return (f"its '{model}' error bound is weaker than the default's elementwise contract "
                "(accuracy='normwise' allows it)")
    return None


def refuse_nonfinite_into_integers(spec) -> None:
    """An integer out_dtype cannot hold NaN (0 * Inf and Inf - Inf make NaN too): refuse
    instead of a silent 0. Called when the arrays hold NaN or Inf."""
    out = spec.kwargs.get("out_dtype")
    if out is not None and np.dtype(out).kind in "iu":
        raise ValueError(f"the arrays hold NaN or Inf, which out_dtype={out} cannot represent; "
                         "pass a floating out_dtype (or None), or replace them first")


def needs_certificate(candidate, spec, accuracy: str) -> bool:
    return accuracy == "elementwise" and candidate.error_model(spec) in CERTIFIED_MODELS


def certify(candidate, spec, arrays) -> str | None:
    """None when ``candidate`` meets the contract on these (finite) arrays, else why not.

    The candidate computes a = |x| (*) |w| in the call's precision; with its own bound
    a >= s - E - gamma_K s, so s >= (min a - E) / (1 + gamma_K) bounds the direct scale s
    at every output, and the contract holds where E <= (F - 1) gamma_K s. Costs one call
    of the candidate, unless a pass over x already shows that even the mean of s is too
    small (then the smallest s is too)."""
    op = spec.operation
    compute = np.finfo(op.result_dtype(spec.replace(out_dtype=None))).dtype  # |complex| is real
    if compute == np.float16:
        compute = np.dtype(np.float32)
    absolute = tuple(np.abs(xp.to_numpy(a)).astype(compute, copy=False)
                     for a in arrays if a is not None)
    u_gamma = gamma(op.terms(spec), _unit(compute))
    norms = _norms(spec, absolute)
    error = normwise_part(candidate.error_model(spec), compute, norms, op.fft_sizes(spec)[1])
    highest_mean = _mean_scale_bound(spec, absolute, norms[2])
    if error > (CONTRACT_FACTOR - 1) * u_gamma * highest_mean:
        return (f"its bound ({error:.3g}) exceeds the contract even where |x| (*) |w| is as "
                f"large as its mean ({highest_mean:.3g} at most): the values' dynamic range "
                "is too wide for it")
    kwargs = {"dtypes": tuple(compute.name for _ in absolute), "out_dtype": None}
    if "cval" in spec.kwargs:
        kwargs["cval"] = abs(spec.kwargs["cval"])
    abs_spec = _with(spec, **kwargs)
    native = tuple(candidate.to_native(a) for a in absolute)
    with np.errstate(all="ignore"):
        got = xp.to_numpy(op.call(candidate.function(), native, abs_spec))
    lowest = float(got.min()) if got.size else 0.0
    scale = (lowest - error) / (1 + u_gamma)
    if not math.isfinite(lowest) or error > (CONTRACT_FACTOR - 1) * u_gamma * max(scale, 0.0):
        return (f"its bound ({error:.3g}) exceeds the contract where |x| (*) |w| is smallest "
                f"({lowest:.3g}): the values' dynamic range is too wide for it")
    return None


def _mean_scale_bound(spec, absolute, big: float) -> float:
    """An upper bound of the mean over the outputs of s = |x| (*) |w|: each tap j reads a
    window of the padded x, whose sum is at most sum|x| + (padded samples) * max(|x|, |cval|),
    so mean(s) <= sum|w| * (sum|x| + extra * big) / outputs. min(s) <= mean(s)."""
    x = absolute[0]
    w_sum = _sum_above(absolute[1]) if len(absolute) > 1 else 1.0
    padded, _ = spec.operation.fft_sizes(spec)
    outputs = max(math.prod(spec.output_shape()), 1)
    return w_sum * (_sum_above(x) + max(padded - x.size, 0) * big) / outputs


def _sum_above(a) -> float:
    """An upper bound of sum(a) for a >= 0: numpy's pairwise sum in a's own precision (no
    float64 copy), enlarged by a bound of its rounding error (blocks of 128, then pairs)."""
    total = float(np.sum(a))
    return total * (1 + gamma(128 + 64, _unit(np.asarray(a).dtype)))


def _with(spec, dtypes, **kwargs):
    from convbench.spec import Spec

    return Spec.make(spec.op, spec.shapes, dtypes, **{**spec.kwargs, **kwargs})


def _unit(dtype) -> float:
    return float(np.finfo(dtype).eps) / 2


def norms(spec, arrays) -> tuple[float, float, float]:
    """(||x padded||_2 bounded above, ||w||_2, max(|x|, |cval|)): the normwise models'
    inputs. Padded samples are copies of x or cval, so each adds at most max(|x|, |cval|)^2."""
    return _norms(spec, tuple(np.abs(np.asarray(a)).astype(np.float64) for a in arrays))


def _norms(spec, absolute) -> tuple[float, float, float]:
    x = absolute[0]
    # no kernel array (gaussian): 1 bounds the 2-norm of a kernel normalised to sum 1
    w = absolute[1] if len(absolute) > 1 else np.ones(1)
    padded, _ = spec.operation.fft_sizes(spec)
    big = max(float(np.max(x, initial=0.0)), abs(float(spec.kwargs.get("cval", 0.0))))
    return (math.sqrt(_sum_of_squares(x) + max(padded - x.size, 0) * big * big),
            math.sqrt(_sum_of_squares(w)), big)


def _sum_of_squares(a) -> float:
    """An upper bound of sum(a**2): a dot product in a's own precision (one pass, no
    float64 copy), enlarged by its worst-case rounding error gamma_n."""
    flat = np.ravel(a)
    if flat.dtype.kind not in "f" or flat.dtype.itemsize < 4:
        flat = flat.astype(np.float64)
    total = float(np.dot(flat, flat))
    return total * (1 + gamma(flat.size, _unit(flat.dtype))) if math.isfinite(total) else math.inf
