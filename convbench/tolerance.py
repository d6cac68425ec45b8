"""Error bounds: how far a correct result may be from the float64 oracle. The one module
that decides tolerances; no candidate has a hand-tuned rtol.

direct  any order of summing K products in precision u (Higham, Accuracy and Stability,
        §3.1): |y - y_ref| <= gamma_K * (|x| (*) |w|),  gamma_K = K u / (1 - K u),
        where (|x| (*) |w|) is the same operation applied to absolute values (the oracle
        computes it). A float16/bfloat16 result must be accumulated in float32 and rounded
        once at the end: + u_out * |y_ref|. Summing in float16 breaks this bound.
fft     FFT convolution is normwise stable (Higham §24.1): every element obeys
        |y - y_ref| <= c * u * log2(L) * ||x_padded||_2 * ||w||_2, L = transform length,
        plus the final rounding; c = 4 covers the forward, pointwise and inverse stages.
exact   the result must equal the oracle bit for bit (max pooling, exact integer paths).

Integer results (``out_dtype``): a candidate's value must lie in
[round_sat(y_ref - tol), round_sat(y_ref + tol)] with tol from the floating model used to
compute it: a sum that sits on .5 within rounding may round either way, nothing else.
"""
from __future__ import annotations

import math

import numpy as np

from convbench.dtypes import ACCUMULATION, UNIT_ROUNDOFF, saturate_cast

MODELS = ("direct", "fft", "exact")
FFT_CONSTANT = 4.0


def gamma(k: int, u: float) -> float:
    if k * u >= 1:
        return math.inf
    return k * u / (1 - k * u)


def compute_dtype(result_dtype) -> str:
    """The floating type a correct candidate computes in for this result dtype."""
    name = np.dtype(result_dtype).name if result_dtype != "bfloat16" else "bfloat16"
    if name in ACCUMULATION:
        return name
    if name.startswith("complex"):
        return "float32" if name == "complex64" else "float64"
    return "float64"  # integer results are rounded from at least float32; use its own model


def bound(model: str, *, result_dtype, ref, absref, terms: int, norms=None, length=None):
    """Elementwise tolerance for a floating result of ``result_dtype``.

    ``norms`` = (||x_padded||_2, ||w||_2) and ``length`` the FFT length, for 'fft'.
    """
    if model not in MODELS:
        raise ValueError(f"unknown error model {model!r}; accepted: {MODELS}")
    if model == "exact":
        return np.zeros_like(np.abs(ref))
    absref = np.abs(absref)  # a negative scale (a negative divisor, say) must not pass everything
    out = np.dtype(result_dtype).name if result_dtype != "bfloat16" else "bfloat16"
    acc = ACCUMULATION.get(out, out if out == "float64" else "float32")
    u_acc = UNIT_ROUNDOFF[acc]
    u_out = UNIT_ROUNDOFF.get(out, u_acc)
    # one final rounding to a narrower result: relative u_out, or half its smallest
    # subnormal where the result is that small
    final = u_out * np.abs(ref) + _half_subnormal(out) if u_out > u_acc else 0.0
    if model == "direct":
        return gamma(terms, u_acc) * absref + final
    nx, nw = norms
    return FFT_CONSTANT * u_acc * max(math.log2(max(length, 2)), 1.0) * nx * nw + \
        gamma(terms, u_acc) * absref + final


def _half_subnormal(name: str) -> float:
    if name == "bfloat16":
        return 2.0**-134
    return float(np.finfo(name).smallest_subnormal) / 2


def integer_interval(ref, tol, out_dtype):
    """The values an integer result may take: rounding y_ref +- tol, saturated."""
    return saturate_cast(ref - tol, out_dtype), saturate_cast(ref + tol, out_dtype)


def compare(out, ref, tol, out_dtype=None) -> dict:
    """Compare a candidate's output to the oracle. Returns passed, reason, max_error and
    worst (error / tolerance; <= 1 passes)."""
    out = np.asarray(out)
    ref = np.asarray(ref)
    if out.shape != ref.shape:
        return dict(passed=False, reason=f"shape {out.shape}, expected {ref.shape}",
                    max_error=math.nan, worst=math.inf)
    if out_dtype is not None and out.dtype != np.dtype(out_dtype):
        return dict(passed=False, reason=f"dtype {out.dtype}, expected {np.dtype(out_dtype)}",
                    max_error=math.nan, worst=math.inf)
    if out.dtype.kind in "fc":
        o = out.astype(np.complex128 if out.dtype.kind == "c" else np.float64)
        ref_nan, out_nan = np.isnan(ref), np.isnan(o)
        if not np.array_equal(ref_nan, out_nan):
            where = np.argwhere(ref_nan != out_nan)[0]
            return dict(passed=False, reason=f"NaN placement differs at {tuple(int(i) for i in where)}",
                        max_error=math.nan, worst=math.inf)
        ref_inf = np.isinf(ref)
        if not np.array_equal(ref_inf, np.isinf(o)) or not np.array_equal(ref[ref_inf], o[ref_inf]):
            where = np.argwhere((ref_inf != np.isinf(o)) | (ref_inf & (ref != o)))[0]
            return dict(passed=False, reason=f"Inf placement differs at {tuple(int(i) for i in where)}",
                        max_error=math.nan, worst=math.inf)
        finite = np.isfinite(ref)
        err = np.where(finite, np.abs(o - np.where(finite, ref, 0)), 0.0)
        tol_f = np.where(finite, tol, 0.0)
    else:
        lo, hi = integer_interval(ref, tol, out.dtype)
        o = out.astype(np.int64)
        nearest = np.clip(o, lo.astype(np.int64), hi.astype(np.int64))
        err = np.abs(o - nearest).astype(np.float64)
        tol_f = np.zeros_like(err)
        if err.size and err.max() > 0:
            where = np.unravel_index(np.argmax(err), err.shape)
            return dict(passed=False,
                        reason=f"off by {int(err.max())} at {tuple(int(i) for i in where)} "
                               f"(got {int(o[where])}, allowed {int(lo[where])}..{int(hi[where])})",
                        max_error=float(err.max()), worst=math.inf)
        return dict(passed=True, reason="", max_error=0.0, worst=0.0)
    if err.size == 0:
        return dict(passed=True, reason="", max_error=0.0, worst=0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(err == 0, 0.0, err / tol_f)
    worst_index = np.unravel_index(np.argmax(ratio), ratio.shape)
    worst = float(ratio[worst_index])
    passed = worst <= 1.0
    reason = "" if passed else (
        f"error {err[worst_index]:.3g} > bound {tol_f[worst_index]:.3g} at "
        f"{tuple(int(i) for i in worst_index)} (value {o[worst_index]!r}, oracle {ref[worst_index]!r})")
    return dict(passed=passed, reason=reason, max_error=float(err.max()), worst=worst)
