"""Error bounds: how far a correct result may be from the float64 oracle. The one module
that decides tolerances; no candidate has a hand-tuned rtol.

direct  any order of summing K products in precision u (Higham, Accuracy and Stability,
        §3.1): |y - y_ref| <= gamma_K * (|x| (*) |w|),  gamma_K = K u / (1 - K u),
        where (|x| (*) |w|) is the same operation applied to absolute values (the oracle
        computes it). A float16/bfloat16 result must be accumulated in float32 and rounded
        once at the end: + u_out * |y_ref| (+ half the smallest subnormal), u_out = 2^-11
        for float16 and 2^-8 for bfloat16 (8 significand bits, float32's exponent range:
        the subnormal term is 2^-134). Summing in float16 or bfloat16 breaks this bound
        (bfloat16 partial sums lose 2^-8 per addition: K 2^-8 instead of K 2^-24 + 2^-8).
fft     FFT convolution is normwise stable (Higham §24.1): every element obeys
        |y - y_ref| <= c * u * log2(L) * ||x_padded||_2 * ||w||_2, L = transform length,
        plus the final rounding; c = 4 covers the forward, pointwise and inverse stages.
exact   the result must equal the oracle bit for bit (max pooling, exact integer paths).
tf32    TensorFloat-32 paths (cuDNN/cuBLAS with TF32 allowed, which is torch's default for
        convolutions; tl.dot with input_precision="tf32"): every float32 input is converted
        to TF32 (10 explicit significand bits, unit roundoff u_t = 2**-11), the product of
        two TF32 values is exact in float32, and the products are summed in float32. Some
        hardware paths chop instead of rounding (an mma on raw float32 registers keeps the
        high 19 bits), so each conversion is bounded by 2 u_t:
            |y - y_ref| <= ((1 + 2 u_t)**2 (1 + gamma_K(u_32)) - 1) * (|x| (*) |w|)
        plus the final rounding of a narrower result: about 2**-9 + K 2**-24 relative to the
        scale, against K 2**-24 for 'direct' (a per-product term 2**15 times float32's unit
        roundoff). float64 results never use TF32: 'direct'.
        It is its own precision class: a TF32 result checked under 'direct' fails, with its
        error in the report (users have been bitten by TF32 silently changing results).
iir     recursive (IIR) Gaussian filters approximate the sampled truncated Gaussian kernel
        of the 'gaussian' op by an infinite impulse response h. Their error is the kernel
        error e = h - g (N-D: the product of the 1-D responses minus the product of the
        1-D kernels) applied to the border-extended input, so
            |y - y_ref| <= ||e||_1 * M,   M = max(max |x|, |cval|)  (norms[2])
        and ||e||_1 <= (filtered axes) * max per-axis ||e||_1 * (1 + 2e-3). The bound is
            |y - y_ref| <= IIR_EPS * M + gamma_K(u) * (|x| (*) |w|) + final rounding,
        IIR_EPS = 3e-3 for Deriche's 4th-order filter (candidates/gaussian/iir_numba.py)
        on at most 3 filtered axes, sigma >= 1 and truncate >= 4. Measured per-axis
        ||e||_1 (impulse response against the truncate-4 kernel, a 0.0025-step scan of
        sigma in [0.5, 4] and sigma up to 1000): 8.18e-4 max for sigma >= 1 (at sigma 1.0;
        8.84e-4 at 0.5), 5.9e-4 at sigma 5, 5.65e-4 at 20 and 50. 3 axes: 2.46e-3, plus
        6e-6 for the line extension (the recursion starts in its steady state 8-9 sigma
        out), float32 roundings of the stored passes (a few 1e-8) and of float32
        recursion states (used up to sigma 32: at most 2.2e-5 per axis measured) -> 3e-3
        (the margin, 5.4e-4, is 8x the last two on 3 axes). 2-D: the input
        x = sign(e) reaches ||e||_1 exactly: 1.28e-3 at sigma 1, 1.0e-3 for sigma >= 1.5.
        Images (2-D random normal, step edge, impulse, camera()): 1e-6 .. 5.6e-4 * M.
        The gamma_K term is the 'direct' one (a candidate may round like a direct sum).
        A sigma off by 10% changes a filtered step edge by ~2% of its height: far outside.
winograd Winograd minimal filtering F(2x2,3x3) of a 3x3 stride-1 2-D conv layer
        (candidates/conv/winograd_numpy.py). Every 2x2 output tile is
            Y = A^T [ sum_c (G g_c G^T) (.) (B^T d_c B) ] A  (+ bias),
        d_c the 4x4 input tile of channel c, g_c the kernel; the transforms add and cancel,
        so the 'direct' bound does not cover it. Standard model (Higham §2.2, no underflow
        or overflow), counting the roundings on the path of each product g_rs d_ab:
            U = G g G^T        <= 4  (2 additions per axis, the halvings are exact; computed
                                     in float64 and rounded once to float32 costs less:
                                     u32 + gamma_4(u64) <= gamma_2(u32))
            V = B^T d B        <= 2  (one addition per axis)
            sum over C/groups  <= Cg (any summation order: gamma_Cg, as for a GEMM)
            + bias             <= 1  (added to M[1,1]: A^T e_1 = (1, 1) reaches all outputs)
            Y = A^T M A        <= 4  (2 additions per axis)
        Each computed intermediate is the exact one with every leaf product perturbed by at
        most that many factors (1 + delta), |delta| <= u; with (1 + theta_j)(1 + theta_k) =
        1 + theta_{j+k} (Higham Lemma 3.3):
            |y - y_ref| <= gamma_{Cg + WINOGRAD_STAGES (+1 with bias)}(u) * (S + |bias|),
            S = |A^T| [ sum_c (|G| |g_c| |G^T|) (.) (|B^T| |d_c| |B|) ] |A|.
        S reads only the 3x3 window of its output: for F(2,3), |A^T|_ik |B^T|_ka vanishes
        for a outside i..i+2, so per axis S_i = sum_t |d[i+t]| (E_i |g|)[t] with
            E_i[t, r] = sum_k |A^T|_ik |B^T|_{k,i+t} |G|_kr:
            E_0 = [[1,0,0],[1,1,1],[2,1,1]],   E_1 = [[1,1,2],[1,1,1],[0,0,1]]   (rows t).
        In 2-D, S at tile phase (i, j) is the conv of |x| with the kernel E_i |g_c| E_j^T.
        Taking the tap-wise max over the four phases gives one 3x3 kernel W(|w|) (>= |w|,
        as E_i >= I), independent of where a candidate starts its tiles, and the bound is
            |y - y_ref| <= gamma_{Cg + 10 (+1)}(u) * ((|x| (*) W(|w|)) + |bias|) + final,
        the op applied to absolute values with w replaced by W(|w|) (|cval| for a constant
        border): verification evaluates it like the direct scale, whole or pointwise
        (convbench.ops.conv.Conv.winograd_scale). W's taps sum to at most
        16 ||w||_1 (column sums of max(E_0, E_1): 4, 3, 4), so a normwise form is
        gamma * 16 * sum_c ||w[o, c]||_1 * max(|x|, |cval|): beta = 16 for F(2x2,3x3).
        The scale is ~13x the direct one and gamma's count Cg + 10 is ~1/9 of K = 9 Cg:
        for many channels the tolerance is ~1.5x 'direct'. Measured (winograd_numpy, worst
        error/bound): small cases 0.035 (float32/64; float16 0.88, its final rounding, as
        0.96 for the direct candidates), quick 0.0011, layers 0.026 (D3, C = 1; 6.5e-5 to
        1.1e-3 for the others), seed 0.028. It still rejects a kernel rounded to float16
        (relative 5e-4 per tap), a wrong row of G, tiles stepped by 3, a dropped bias, a
        swapped border (tests/test_conv_winograd.py).
        F(4x4,3x3) is not covered: its |A^T| |B^T| reaches outside the 3x3 window (no
        elementwise form of this kind; winograd_windows raises), and the normwise
        constant is 29.33^2 = 860: a tolerance near the outputs' own size.

Scales worked out per op: where |x| (*) |w| is not the right absref, the op's record gives
one and the 'direct' model multiplies it by gamma_K(u). batch_norm (convbench/ops/
batch_norm.py) is the main case: its absref adds the statistics' errors divided by gamma_K,
the variance's cancellation among them, mean((|x| + |mean|)**2) / var: a float32 result's
tolerance grows with |mean| / std (about 1000x on data with |mean| / std = 1000).

Integer results (``out_dtype``): a candidate's value must lie in
[round_sat(y_ref - tol), round_sat(y_ref + tol)] with tol from the floating model used to
compute it: a sum that sits on .5 within rounding may round either way, nothing else.
"""
from __future__ import annotations

import math

import numpy as np

from convbench.dtypes import ACCUMULATION, UNIT_ROUNDOFF, saturate_cast

MODELS = ("direct", "fft", "exact", "tf32", "iir", "winograd")
FFT_CONSTANT = 4.0
IIR_EPS = 3e-3
WINOGRAD_STAGES = 10     # roundings besides the channel sum: 4 kernel, 2 input, 4 output
# F(2x2, 3x3): Y = A^T [(G g G^T) (.) (B^T d B)] A (Lavin & Gray 2016)
WINOGRAD_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=float)
WINOGRAD_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
WINOGRAD_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=float)


def winograd_windows(at=WINOGRAD_AT, bt=WINOGRAD_BT, g=WINOGRAD_G) -> np.ndarray:
    """E (m, r, r): E[i, t, s] = sum_k |A^T|_ik |B^T|_{k, i+t} |G|_ks, the weight of input
    sample i+t of a tile and tap s in the absolute-value Winograd sum of output i, for
    F(m, r) given by its matrices (default F(2, 3)). Raises ValueError if |A^T||B^T|
    reaches outside the outputs' windows (F(4, 3) does): then there is no such form."""
    at, bt, g = (np.asarray(a, dtype=np.float64) for a in (at, bt, g))
    full = np.einsum("ik,ka,kr->iar", np.abs(at), np.abs(bt), np.abs(g))
    m, k = at.shape[0], g.shape[1]
    for i in range(m):
        outside = np.delete(full[i], range(i, i + k), axis=0)
        if outside.any():
            raise ValueError("the transforms reach outside the output's window")
    return np.stack([full[i, i:i + k] for i in range(m)])


def winograd_kernel(w) -> np.ndarray:
    """W(|w|) of the 'winograd' model for kernels w (..., 3, 3): the tap-wise max over
    the four tile phases (i, j) of E_i |w| E_j^T (float64)."""
    a = np.abs(np.asarray(w, dtype=np.float64))
    if a.shape[-2:] != (3, 3):
        raise ValueError(f"the 'winograd' model is for 3x3 kernels, got {a.shape[-2:]}")
    e = winograd_windows()
    phases = [np.einsum("tr,...rs,us->...tu", e[i], a, e[j]) for i in range(2) for j in range(2)]
    return np.maximum.reduce(phases)


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

    ``norms`` = (||x_padded||_2, ||w||_2, max(|x|, |cval|)) and ``length`` the FFT length,
    for 'fft' (the first two) and 'iir' (the third). For 'winograd', ``absref`` is the op
    on absolute values with the kernel replaced by ``winograd_kernel(w)`` and ``terms``
    the channels summed per output, C/groups (+1 with bias): Conv.winograd_scale.
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
    if model == "direct" or (model == "tf32" and acc == "float64"):
        return gamma(terms, u_acc) * absref + final
    if model == "tf32":
        per_conversion = 2 * UNIT_ROUNDOFF["tf32"]
        relative = (1 + per_conversion) ** 2 * (1 + gamma(terms, u_acc)) - 1
        return relative * absref + final
    if model == "winograd":
        return gamma(terms + WINOGRAD_STAGES, u_acc) * absref + final
    return normwise_part(model, result_dtype, norms, length) + gamma(terms, u_acc) * absref + final


def normwise_part(model: str, result_dtype, norms, length) -> float:
    """The part of the bound that does not shrink with the output element ('fft': the
    normwise FFT term; 'iir': the kernel approximation times max(|x|, |cval|)); 0 for the
    elementwise models."""
    if model == "iir":
        return IIR_EPS * norms[2]
    if model != "fft":
        return 0.0
    out = np.dtype(result_dtype).name if result_dtype != "bfloat16" else "bfloat16"
    u_acc = UNIT_ROUNDOFF[ACCUMULATION.get(out, out if out == "float64" else "float32")]
    return FFT_CONSTANT * u_acc * max(math.log2(max(length, 2)), 1.0) * norms[0] * norms[1]


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
