# iir_numba: recursive (IIR) Gaussian, Deriche's 4th-order form, compiled with numba.
#
# Algorithm: R. Deriche, "Recursively implementing the Gaussian and its derivatives" (1993):
#   the Gaussian exp(-t^2/2s^2) is fitted by two damped cosines,
#       h(t) = (a0 cos(w0 t/s) + a1 sin(w0 t/s)) e^(-b0 t/s)
#            + (c0 cos(w1 t/s) + c1 sin(w1 t/s)) e^(-b1 t/s),   t >= 0,
#   (a0, a1, b0, w0, c0, c1, b1, w1) = (1.680, 3.735, 1.783, 0.6318, -0.6803, -0.2598,
#   1.723, 1.997), Deriche's published values (a least-squares refit here gained nothing).
#   Each damped cosine is a pair of complex poles z = e^((-b +- i w)/s); the filters are
#   built from the poles and residues: per axis, two 2nd-order sections run causally
#   (samples t >= 0) and two anticausally (t <= -1), summed, normalised to a DC gain of 1.
#   Per sample and axis that is 16 multiply-adds WHATEVER sigma is; the separable direct
#   kernel costs 2 * int(4 sigma + 0.5) + 1 per axis.
#
#       line:  [ border extension | x[0] ... x[n-1] | border extension ]   P per side
#              causal  ------------------------------------------------>   y+[k]
#              anticausal <--------------------------------------------   y-[k]
#              out[i] = y+[P+i] + y-[P+i]
#
#   Borders: every line is extended by P (about 9 sigma) samples per side by the border
#   rule (numpy.pad of the indices = refimpl.pad's rule, padding wider than the line
#   included); a recursion starts in the steady state of its first value, so what lies
#   more than P samples beyond weighs less than TAIL = 1e-6 of the output.
#   Chunks: a line is filtered CHUNK = max(256, 4 P) samples at a time. The causal
#   recursion goes on from chunk to chunk; each chunk's anticausal recursion starts P
#   samples past the chunk (in the steady state there: the same TAIL bound as at the end
#   of a line), and a thread's range of rows starts its causal recursion P samples
#   early the same way. Every output sample still sees one such start per direction,
#   P or more samples away: the error budget is the one of the line extension.
#
#   Two filtered trailing axes (images): ONE sweep. Per thread a range of rows, per chunk
#
#       x rows (P early .. P late) --columns: all m of them are the lanes--> V (cache)
#       V, 256 rows at a time --16x16 transposes--> X (samples x 256 lanes, cache)
#       X --rows: recursions across the 256 lanes--> T --16x16 transposes--> out rows
#
#   so the image is read once and the result written once (64 MiB each at 4096^2
#   float32; a pass per axis moves twice that). The lanes are innermost everywhere and
#   the recursion runs 4 steps per visit of its states (5 rows of lanes), vectorised
#   across the lanes (see Kernels below). Other axes: the same column sweep into another
#   array (strips of <= 4096 columns); the last axis alone: the row bands, in place;
#   trailing unfiltered axes of < 64 samples (an image's channels) are moved in front
#   first and back after (two copies; 3 lanes would run scalar).
#   Transposes: TILE x TILE blocks as 16 vector loads, 4 rounds of 2-input shuffles and
#   16 stores (a numba intrinsic emitting LLVM shufflevector: 3x the scalar loop, which
#   LLVM leaves scalar); the last one streams (non-temporal stores, no read for
#   ownership) into an output allocated on a cache line. Buffers start on cache lines,
#   rows not a multiple of 1 KiB apart (rows 16 KiB apart share L1 sets: 1.4x slower).
#   Threads: row ranges (or bands) handed out by candidates.runtime.run_jobs to nogil
#   kernels; not numba's prange, whose end-of-loop barrier waits for a thread that
#   another process's job holds off the CPU. The result's pages are mapped by the calling
#   thread first (_empty).
# Wins: sigma >= ~2 on big images, nearly flat in sigma: on 4096x4096 float32 one thread
#   takes about the same time for sigma 1 .. 5 and 1.5x that at sigma 20, where
#   GaussianBlur's time grows ~6x from sigma 1 to 5 and ~35x to 20. With two threads,
#   sigma 5 on 1024^2 .. 4096^2 takes about a third of GaussianBlur's time.
# Does not win: sigma <= ~1 single-threaded (GaussianBlur's 9 taps), tiny images (the
#   9-sigma extension per side dominates). Larger sigma keeps a pass per axis (two
#   sweeps, each reading and writing the image): V, 6 P rows, would not fit LANE_BYTES
#   with whole rows past sigma 9.6 on 4096-wide rows (P = 85), 32 on 1024-wide ones.
# Applies: sigma in [SIGMA_MIN, SIGMA_MAX] = [1, 1000] on every filtered axis (0 = axis
#   untouched), truncate >= 4 (the recursion approximates the untruncated Gaussian), at
#   most 3 filtered axes (the stated bound covers 3), any rank, every border, real
#   dtypes (integers and float16 computed through float32). Small sigma, a short
#   truncate and a 4th filtered axis are refused in supports().
# Numerics: NOT the exact truncated kernel; its own error model 'iir' (convbench/
#   tolerance.py states it with the measurement; tests/test_gaussian.py re-measures):
#   per filtered axis the impulse response differs from the sampled truncate-4 kernel
#   by at most 8.18e-4 in L1 norm for sigma in [1, 1000] (the fit itself: 5.3e-4; the
#   truncated tail and the sampling at small sigma: the rest), so
#   |y - y_ref| <= 8.2e-4 * (filtered axes) * max(|x|, |cval|) plus roundings; images
#   show 1e-6 .. 5.6e-4 of max|x|. The recursion's states: float32 for float32/float16/
#   integer images up to sigma F32_STATE_SIGMA = 32 (twice the lanes per vector; its
#   rounding, amplified as the poles approach 1, measured at most 2.2e-5 * max|x| per
#   axis there, 1e-4 at 64, 3e-2 at 1000), float64 above and for float64 images; the
#   multiply-adds are fused (FMA: one rounding each, never reassociated); the buffers
#   between the axes hold the states' type. Non-finite inputs: a recursion smears a NaN
#   along its whole line, so such lines are detected (the causal state ends non-finite),
#   the image is filtered again with non-finite values set to 0, and the NaN/Inf
#   placement of the direct filter (any non-finite value within the truncated window) is
#   written back.
from __future__ import annotations

import functools
import math

import numpy as np

from candidates.runtime import extend
from refimpl.dtypes import result_dtype, round_saturate

LIBRARY = "numba"
DEVICE = "cpu"

SIGMA_MIN = 1.0
SIGMA_MAX = 1000.0
TRUNCATE_MIN = 4.0
MAX_FILTERED_AXES = 3
TAIL = 1e-6          # weight of the samples beyond the line extension (steady-state start)
CHUNK = 256          # samples per chunk of a line (CHUNK_PER_PAD * padding when more)
CHUNK_PER_PAD = 4    # (each chunk's anticausal recursion starts a padding further)
STRIP = 4096         # lanes (columns) of the first-axis sweep, at most
BAND = 256           # lines (rows) transposed together along the last axis, at most
LANE_BYTES = 8 << 20  # and at most this much in one sweep buffer (V, X, T) per thread
TILE = 16            # transposes: TILE x TILE blocks through vector registers
CACHE_LINE = 64
HUGE_PAGE = 2 << 20  # transparent huge pages (the result is touched once per page first)
MIN_JOBS_PER_THREAD = 4  # row ranges and bands cut until every thread has this many
BATCH_INNER = 64     # trailing unfiltered axes smaller than this are moved in front
# float32 images: the recursion runs in float32 up to this sigma (twice as many lanes per
# vector), in float64 above. Measured float32-state error per axis, / max|x| (steps,
# random, square waves, 1000 +- 1 offsets): 9e-7 at sigma 5, 7.5e-6 at 20, 2.2e-5 at 32,
# 1e-4 at 64, 2.9e-4 at 100 (it grows like sigma^2: the poles approach 1).
F32_STATE_SIGMA = 32.0
# Threads: one per PIXELS_PER_THREAD samples at most. Medians on the shared 2-core
# machine, interleaved with GaussianBlur: 1024x1024 float32, sigma 5: one thread 1.5 ms,
# two 1.15 ms; 512x512, sigma 2: one thread 0.46 ms, two 0.52 ms.
PIXELS_PER_THREAD = 1 << 19

# Deriche (1993), 4th order: (a0, a1, b0, w0) and (c0, c1, b1, w1) of the two damped cosines
DERICHE = ((1.680, 3.735, 1.783, 0.6318), (-0.6803, -0.2598, 1.723, 1.997))


NONFINITE = True   # placed by masks (_nonfinite_placement), not by the recursion


def ERROR(spec):
    """Always the 'iir' model of convbench.tolerance (a function: the module contract
    lists the generic models by name)."""
    return "iir"


def _sigmas(sigma, ndim):
    if isinstance(sigma, (tuple, list)):
        return tuple(float(s) for s in sigma)
    return (float(sigma),) * ndim


def supports(spec):
    kw = spec.kwargs
    sigmas = _sigmas(kw["sigma"], len(spec.shapes[0]))
    filtered = [s for s in sigmas if s > 0]
    if any(s < SIGMA_MIN for s in filtered):
        return (f"sigma < {SIGMA_MIN}: the recursive fit is not checked there "
                f"(a direct kernel of a few taps is cheaper anyway)")
    if any(s > SIGMA_MAX for s in filtered):
        return f"sigma > {SIGMA_MAX:g}: the line extension (about 9 sigma per side) gets too long"
    if kw["truncate"] < TRUNCATE_MIN:
        return (f"truncate {kw['truncate']:g} < {TRUNCATE_MIN:g}: the recursion approximates the "
                f"untruncated Gaussian, which differs from a short truncated kernel")
    if len(filtered) > MAX_FILTERED_AXES:
        return f"more than {MAX_FILTERED_AXES} filtered axes (the stated error bound covers 3)"
    if spec.dtype.startswith("complex") or spec.dtype == "bfloat16":
        return f"dtype {spec.dtype} is not computed here"
    return None


# ---------------------------------------------------------------------------------------
# Coefficients (pure Python, float64)
# ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def coefficients(sigma: float) -> np.ndarray:
    """(2, 8) float64: per 2nd-order section (n0, n1, m1, m2, d1, d2, gc, ga).

    Causal:      y+[k] = n0 x[k] + n1 x[k-1]   - d1 y+[k-1] - d2 y+[k-2]
    Anticausal:  y-[k] = m1 x[k+1] + m2 x[k+2] - d1 y-[k+1] - d2 y-[k+2]
    gc, ga: the steady-state output per unit constant input (to start the recursions).
    The two sections together sum h(|t|) over every integer t exactly once, scaled so
    that the total is 1.
    """
    poles, residues = [], []
    for amp_cos, amp_sin, decay, freq in DERICHE:
        z = complex(math.exp(-decay / sigma) * math.cos(freq / sigma),
                    math.exp(-decay / sigma) * math.sin(freq / sigma))
        poles.append(z)
        residues.append(complex(amp_cos, -amp_sin) / 2)   # a cos + b sin = Re[(a - ib) e^(iwt)]
    # sum over all t of h(|t|): causal t >= 0 gives a/(1-z), anticausal t >= 1 gives a z/(1-z),
    # each with its complex conjugate
    total = sum(2 * ((a / (1 - z)) + (a * z / (1 - z))).real for a, z in zip(residues, poles))
    out = np.empty((2, 8))
    for i, (a, z) in enumerate(zip(residues, poles)):
        a = a / total
        d1, d2 = -2 * z.real, abs(z) ** 2
        n0, n1 = 2 * a.real, -2 * (a * z.conjugate()).real
        m1, m2 = 2 * (a * z).real, -2 * abs(z) ** 2 * a.real
        out[i] = (n0, n1, m1, m2, d1, d2, (n0 + n1) / (1 + d1 + d2), (m1 + m2) / (1 + d1 + d2))
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=64)
def line_padding(sigma: float) -> int:
    """Samples of border extension per side: beyond them the impulse response weighs
    less than TAIL in total (|h(t)| <= sum 2|a||z|^t, a geometric tail)."""
    worst = 0
    for amp_cos, amp_sin, decay, _ in DERICHE:
        r = math.exp(-decay / sigma)
        amp = 2 * math.hypot(amp_cos, amp_sin) / (sigma * math.sqrt(2 * math.pi)) * 1.01
        # amp * r^(P+1) / (1 - r) <= TAIL / 4 (two sections, two sides)
        p = math.log(TAIL / 4 * (1 - r) / amp) / math.log(r) - 1
        worst = max(worst, math.ceil(p))
    return max(worst, 2)


@functools.lru_cache(maxsize=64)
def source_map(n: int, pad: int, border: str) -> np.ndarray:
    """Index into a line of length n for each of the n + 2*pad extended samples (-1 where
    a constant border reads cval). numpy.pad of the indices is refimpl.pad's rule (its
    canonical names are numpy.pad's, padding wider than the line included).

    >>> source_map(3, 4, "reflect").tolist()
    [0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2]
    >>> source_map(2, 1, "constant").tolist()
    [-1, 0, 1, -1]
    """
    index = np.arange(n, dtype=np.int64)
    out = extend(index, pad, border, -1)
    out.setflags(write=False)
    return out


# ---------------------------------------------------------------------------------------
# Kernels (plain Python here; numba-compiled on first use by _compiled())
#
# Layout: W lines side by side ("lanes", innermost), a row of W samples per step, the
# states as 6 rows of W (x, a1, a2, b1, b2, x'), outputs as rows S >= W apart. The loops
# over the W lanes are what LLVM vectorises: every index is an unsigned integer (numba
# then skips its negative-index wraparound, the addresses stay affine) and the state
# rows are W apart, the loop's trip count, from which LLVM's dependence analysis proves
# that a row's loads and stores do not overlap the next row's (other arrays: checked
# once per loop at run time). A fixed lane count was 1.5-2x slower at 16-64 lanes.
# ---------------------------------------------------------------------------------------

def _causal_start(src, crow, base, stride, W, s, c, st):
    """Steady state of the causal recursion for a constant input equal to source row s
    (-1: the row crow of cval), per lane: st rows x, a1, a2, b1, b2."""
    gca, gcb = c[0, 6], c[1, 6]
    L = np.uint64(W)
    if s < 0:
        r, q = crow, np.uint64(0)
    else:
        r, q = src, np.uint64(base + s * stride)
    for l in range(W):
        j = np.uint64(l)
        v = r[q + j]
        st[j] = v
        st[L + j] = gca * v
        st[2 * L + j] = gca * v
        st[3 * L + j] = gcb * v
        st[4 * L + j] = gcb * v


def _causal(src, crow, base, stride, W, idx, k0, k1, c, st, T, S, t0):
    """Causal steps k0 .. k1-1: lane j of step k reads src[base + idx[k] * stride + j]
    (crow[j] where idx[k] < 0) and writes y+ to T[(t0 + k - k0) * S + j]."""
    n0a, n1a, d1a, d2a = c[0, 0], c[0, 1], c[0, 4], c[0, 5]
    n0b, n1b, d1b, d2b = c[1, 0], c[1, 1], c[1, 4], c[1, 5]
    L = np.uint64(W)
    L2 = np.uint64(2 * W)
    L3 = np.uint64(3 * W)
    L4 = np.uint64(4 * W)
    S1 = np.uint64(S)
    S2 = np.uint64(2 * S)
    S3 = np.uint64(3 * S)
    k = k0
    while k + 4 <= k1:                        # four steps per visit of the states
        s0, s1, s2, s3 = idx[k], idx[k + 1], idx[k + 2], idx[k + 3]
        if s0 < 0:
            r0, q0 = crow, np.uint64(0)
        else:
            r0, q0 = src, np.uint64(base + s0 * stride)
        if s1 < 0:
            r1, q1 = crow, np.uint64(0)
        else:
            r1, q1 = src, np.uint64(base + s1 * stride)
        if s2 < 0:
            r2, q2 = crow, np.uint64(0)
        else:
            r2, q2 = src, np.uint64(base + s2 * stride)
        if s3 < 0:
            r3, q3 = crow, np.uint64(0)
        else:
            r3, q3 = src, np.uint64(base + s3 * stride)
        t = np.uint64(t0 + k - k0) * S1
        for l in range(W):
            j = np.uint64(l)
            x0 = st[j]
            a1 = st[L + j]
            a2 = st[L2 + j]
            b1 = st[L3 + j]
            b2 = st[L4 + j]
            x1 = r0[q0 + j]                   # the state of the step before last first,
            a2 = n0a * x1 + n1a * x0 - d2a * a2 - d1a * a1   # the last one last: one
            b2 = n0b * x1 + n1b * x0 - d2b * b2 - d1b * b1   # multiply-add per step on
            T[t + j] = a2 + b2                               # the recurrence's path
            x0 = r1[q1 + j]
            a1 = n0a * x0 + n1a * x1 - d2a * a1 - d1a * a2
            b1 = n0b * x0 + n1b * x1 - d2b * b1 - d1b * b2
            T[t + S1 + j] = a1 + b1
            x1 = r2[q2 + j]
            a2 = n0a * x1 + n1a * x0 - d2a * a2 - d1a * a1
            b2 = n0b * x1 + n1b * x0 - d2b * b2 - d1b * b1
            T[t + S2 + j] = a2 + b2
            x0 = r3[q3 + j]
            a1 = n0a * x0 + n1a * x1 - d2a * a1 - d1a * a2
            b1 = n0b * x0 + n1b * x1 - d2b * b1 - d1b * b2
            T[t + S3 + j] = a1 + b1
            st[j] = x0
            st[L + j] = a1
            st[L2 + j] = a2
            st[L3 + j] = b1
            st[L4 + j] = b2
        k += 4
    while k < k1:
        s0 = idx[k]
        if s0 < 0:
            r0, q0 = crow, np.uint64(0)
        else:
            r0, q0 = src, np.uint64(base + s0 * stride)
        t = np.uint64(t0 + k - k0) * S1
        for l in range(W):
            j = np.uint64(l)
            x1 = r0[q0 + j]
            ya = n0a * x1 + n1a * st[j] - d2a * st[L2 + j] - d1a * st[L + j]
            yb = n0b * x1 + n1b * st[j] - d2b * st[L4 + j] - d1b * st[L3 + j]
            st[j] = x1
            st[L2 + j] = st[L + j]
            st[L + j] = ya
            st[L4 + j] = st[L3 + j]
            st[L3 + j] = yb
            T[t + j] = ya + yb
        k += 1


def _nonfinite_lanes(st, W):
    """Lanes whose causal state is not finite (a recursion never leaves NaN or Inf)."""
    L = np.uint64(W)
    bad = 0
    for l in range(W):
        j = np.uint64(l)
        if not np.isfinite(st[L + j] + st[3 * L + j]):
            bad += 1
    return bad


def _anticausal_start(src, crow, base, stride, W, s, c, st):
    """Steady state of the anticausal recursion: st rows x[k+1], a1, a2, b1, b2, x[k+2]."""
    gaa, gab = c[0, 7], c[1, 7]
    L = np.uint64(W)
    if s < 0:
        r, q = crow, np.uint64(0)
    else:
        r, q = src, np.uint64(base + s * stride)
    for l in range(W):
        j = np.uint64(l)
        v = r[q + j]
        st[j] = v
        st[5 * L + j] = v
        st[L + j] = gaa * v
        st[2 * L + j] = gaa * v
        st[3 * L + j] = gab * v
        st[4 * L + j] = gab * v


def _anticausal(src, crow, base, stride, W, idx, k0, k1, c, st, T, S, t1):
    """Anticausal steps k = k1-1 down to k0, reading as _causal does:
    T[(t1 - (k1 - 1 - k)) * S + j] += y-[k]."""
    m1a, m2a, d1a, d2a = c[0, 2], c[0, 3], c[0, 4], c[0, 5]
    m1b, m2b, d1b, d2b = c[1, 2], c[1, 3], c[1, 4], c[1, 5]
    L = np.uint64(W)
    L2 = np.uint64(2 * W)
    L3 = np.uint64(3 * W)
    L4 = np.uint64(4 * W)
    L5 = np.uint64(5 * W)
    S1 = np.uint64(S)
    S2 = np.uint64(2 * S)
    S3 = np.uint64(3 * S)
    k = k1 - 1
    while k - 3 >= k0:
        s0, s1, s2, s3 = idx[k], idx[k - 1], idx[k - 2], idx[k - 3]
        if s0 < 0:
            r0, q0 = crow, np.uint64(0)
        else:
            r0, q0 = src, np.uint64(base + s0 * stride)
        if s1 < 0:
            r1, q1 = crow, np.uint64(0)
        else:
            r1, q1 = src, np.uint64(base + s1 * stride)
        if s2 < 0:
            r2, q2 = crow, np.uint64(0)
        else:
            r2, q2 = src, np.uint64(base + s2 * stride)
        if s3 < 0:
            r3, q3 = crow, np.uint64(0)
        else:
            r3, q3 = src, np.uint64(base + s3 * stride)
        t = np.uint64(t1 - (k1 - 1 - k)) * S1
        for l in range(W):
            j = np.uint64(l)
            x1 = st[j]
            x2 = st[L5 + j]
            a1 = st[L + j]
            a2 = st[L2 + j]
            b1 = st[L3 + j]
            b2 = st[L4 + j]
            a2 = m1a * x1 + m2a * x2 - d2a * a2 - d1a * a1
            b2 = m1b * x1 + m2b * x2 - d2b * b2 - d1b * b1
            x2 = r0[q0 + j]
            T[t + j] = T[t + j] + (a2 + b2)
            a1 = m1a * x2 + m2a * x1 - d2a * a1 - d1a * a2
            b1 = m1b * x2 + m2b * x1 - d2b * b1 - d1b * b2
            x1 = r1[q1 + j]
            T[t - S1 + j] = T[t - S1 + j] + (a1 + b1)
            a2 = m1a * x1 + m2a * x2 - d2a * a2 - d1a * a1
            b2 = m1b * x1 + m2b * x2 - d2b * b2 - d1b * b1
            x2 = r2[q2 + j]
            T[t - S2 + j] = T[t - S2 + j] + (a2 + b2)
            a1 = m1a * x2 + m2a * x1 - d2a * a1 - d1a * a2
            b1 = m1b * x2 + m2b * x1 - d2b * b1 - d1b * b2
            x1 = r3[q3 + j]
            T[t - S3 + j] = T[t - S3 + j] + (a1 + b1)
            st[j] = x1
            st[L5 + j] = x2
            st[L + j] = a1
            st[L2 + j] = a2
            st[L3 + j] = b1
            st[L4 + j] = b2
        k -= 4
    while k >= k0:
        s0 = idx[k]
        if s0 < 0:
            r0, q0 = crow, np.uint64(0)
        else:
            r0, q0 = src, np.uint64(base + s0 * stride)
        t = np.uint64(t1 - (k1 - 1 - k)) * S1
        for l in range(W):
            j = np.uint64(l)
            ra = m1a * st[j] + m2a * st[L5 + j] - d2a * st[L2 + j] - d1a * st[L + j]
            rb = m1b * st[j] + m2b * st[L5 + j] - d2b * st[L4 + j] - d1b * st[L3 + j]
            st[L5 + j] = st[j]
            st[j] = r0[q0 + j]
            st[L2 + j] = st[L + j]
            st[L + j] = ra
            st[L4 + j] = st[L3 + j]
            st[L3 + j] = rb
            T[t + j] = T[t + j] + (ra + rb)
        k -= 1


def _lines(src, crow, base, stride, W, idx, pad, c, i0, c0, c1, V, S, stc, sta):
    """Samples c0 .. c1-1 of W lines filtered into the rows pad .. pad+c1-c0-1 of V (row
    k - c0 for extended sample k, rows S apart; the rows around take the warm-up steps);
    lane j of extended sample k reads src[base + idx[k] * stride + j] (crow[j] where
    idx[k] < 0). The causal recursion starts pad samples before sample i0 (when c0 == i0;
    else it goes on from the states stc), the anticausal one pad samples past c1 (or at
    the end of the extension), both in the steady state of their first sample: whatever
    lies further weighs less than TAIL, as at the ends of a line."""
    npad = idx.shape[0]
    k0 = pad + c0
    if c0 == i0:
        k0 = i0
        _causal_start(src, crow, base, stride, W, idx[i0], c, stc)
    _causal(src, crow, base, stride, W, idx, k0, pad + c1, c, stc, V, S, k0 - c0)
    end = min(npad, c1 + 2 * pad)
    _anticausal_start(src, crow, base, stride, W, idx[end - 1], c, sta)
    _anticausal(src, crow, base, stride, W, idx, pad + c0, end, c, sta, V, S, end - 1 - c0)


def _copy_rows(V, v0, S, W, rows, dst, base, stride):
    """dst[base + i * stride + j] = V[v0 + i * S + j], i < rows, j < W."""
    for i in range(rows):
        q = np.uint64(base + i * stride)
        t = np.uint64(v0 + i * S)
        for l in range(W):
            j = np.uint64(l)
            dst[q + j] = V[t + j]


def _transpose_in(src, ns, r0, W, s0, s1, X, x0, S):
    """X[x0 + (s - s0) * S + l] = src[(r0 + l) * ns + s], s in s0 .. s1-1, l < W: columns
    of the lines r0 .. r0+W-1 (ns apart) of the flat src, lanes innermost. TILE x TILE
    blocks go through vector registers (_transpose_tile), TILE lines at a time."""
    N = np.uint64(ns)
    Su = np.uint64(S)
    full = s1 - s0 - (s1 - s0) % TILE
    l0 = 0
    while l0 + TILE <= W:
        for s in range(s0, s0 + full, TILE):
            _transpose_tile(src, np.uint64(r0 + l0) * N + np.uint64(s), N, X,
                            np.uint64(x0 + (s - s0) * S + l0), Su)
        l0 += TILE
    for l in range(l0, W):
        for s in range(s0, s0 + full):
            X[np.uint64(x0 + (s - s0) * S + l)] = src[np.uint64(r0 + l) * N + np.uint64(s)]
    for s in range(s0 + full, s1):
        for l in range(W):
            X[np.uint64(x0 + (s - s0) * S + l)] = src[np.uint64(r0 + l) * N + np.uint64(s)]


def _transpose_out(T, t0, W, S, dst, n, dalign, r0, c0, m):
    """dst[(r0 + l) * n + c0 + i] = T[t0 + i * S + l], i < m, l < W (the inverse layout).
    Streamed (non-temporal stores) when every tile row starts a cache line: dst's data
    starts dalign samples past a cache line (0), n and c0 are whole lines."""
    line = CACHE_LINE // dst.itemsize
    stream = dalign == 0 and n % line == 0 and c0 % line == 0
    N = np.uint64(n)
    Su = np.uint64(S)
    full = m - m % TILE
    l0 = 0
    while l0 + TILE <= W:
        for i in range(0, full, TILE):
            if stream:
                _transpose_tile_stream(T, np.uint64(t0 + i * S + l0), Su, dst,
                                       np.uint64(r0 + l0) * N + np.uint64(c0 + i), N)
            else:
                _transpose_tile(T, np.uint64(t0 + i * S + l0), Su, dst,
                                np.uint64(r0 + l0) * N + np.uint64(c0 + i), N)
        l0 += TILE
    for l in range(l0, W):
        for i in range(full):
            dst[np.uint64(r0 + l) * N + np.uint64(c0 + i)] = T[np.uint64(t0 + i * S + l)]
    for l in range(W):
        for i in range(full, m):
            dst[np.uint64(r0 + l) * N + np.uint64(c0 + i)] = T[np.uint64(t0 + i * S + l)]
    if stream:
        _store_fence()


def _gather(src, n, ns, r0, W, S, idx, x0, x1, cval, X, H, E, h, pad):
    """X[(k - x0) * S + l] = extended sample k of line r0 + l, k in x0 .. x1-1: the
    line's own samples transposed from src, the border extension (columns idx[k], cval
    where idx[k] < 0) copied from H (the line's first h samples, transposed) or E (its
    last h), both saved before any write to the lines."""
    a = max(x0, pad)
    b = min(x1, pad + n)
    if a < b:
        _transpose_in(src, ns, r0, W, a - pad, b - pad, X, (a - x0) * S, S)
    for k in range(x0, x1):
        if a <= k < b:
            continue
        s = idx[k]
        xb = np.uint64((k - x0) * S)
        if s < 0:
            for l in range(W):
                X[xb + np.uint64(l)] = cval
        elif s < h:
            hb = np.uint64(s * S)
            for l in range(W):
                X[xb + np.uint64(l)] = H[hb + np.uint64(l)]
        else:
            eb = np.uint64((s - n + h) * S)
            for l in range(W):
                X[xb + np.uint64(l)] = E[eb + np.uint64(l)]


def _rows(src, ns, dst, n, dalign, idx, ident, pad, c, cval, r0, d0, W, S, chunk, X, H, E, T,
          stc, sta):
    """Filter the W lines r0 .. r0+W-1 (length n, ns apart) of the flat src into the rows
    d0 .. d0+W-1 of the flat (rows, n) dst (may be src, d0 = r0), chunk samples at a time
    through the transposed buffers X and T (rows S apart). Returns how many of the lines
    held NaN/Inf."""
    npad = idx.shape[0]
    h = min(n, pad + 1)          # every border index lies in the first or last h samples
    _transpose_in(src, ns, r0, W, 0, h, H, 0, S)
    _transpose_in(src, ns, r0, W, n - h, n, E, 0, S)
    for c0 in range(0, n, chunk):
        c1 = min(c0 + chunk, n)
        x0 = 0 if c0 == 0 else pad + c0      # X holds the extended samples x0 .. x1-1
        x1 = min(npad, c1 + 2 * pad)
        _gather(src, n, ns, r0, W, S, idx, x0, x1, cval, X, H, E, h, pad)
        _lines(X, X, -x0 * S, S, W, ident, pad, c, 0, c0, c1, T, S, stc, sta)
        _transpose_out(T, pad * S, W, S, dst, n, dalign, d0, c0, c1 - c0)
    return _nonfinite_lanes(stc, W)


def _transpose_tile(src, s0, sstride, dst, d0, dstride):
    """dst[d0 + j * dstride + i] = src[s0 + i * sstride + j], i, j < TILE (numba replaces
    this by vector loads, shuffles and stores: _tile_intrinsics)."""
    for i in range(TILE):
        for j in range(TILE):
            dst[d0 + np.uint64(j) * dstride + np.uint64(i)] = \
                src[s0 + np.uint64(i) * sstride + np.uint64(j)]


_transpose_tile_stream = _transpose_tile


def _store_fence():
    """Orders non-temporal stores before later ones (an sfence once compiled)."""


def _tile_intrinsics():
    """numba intrinsics for _transpose_tile and _transpose_tile_stream: TILE vector loads,
    log2(TILE) rounds of two-input shuffles (each swaps the off-diagonal b x b blocks of
    every 2b x 2b block, b = TILE/2 .. 1), TILE vector stores (converting when the dtypes
    differ); about 3x faster than the scalar loop, which LLVM leaves scalar. The stream
    variant stores with non-temporal hints (whole cache lines straight to memory, no read
    for ownership; the caller guarantees cache-line-aligned rows), and _store_fence
    orders those stores before what follows."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    def codegen(stream, context, builder, signature, args):
        sty, dty = signature.args[0], signature.args[3]
        s = context.make_array(sty)(context, builder, args[0])
        d = context.make_array(dty)(context, builder, args[3])
        svec = ir.VectorType(context.get_data_type(sty.dtype), TILE)
        dvec = ir.VectorType(context.get_data_type(dty.dtype), TILE)
        index = args[1].type
        rows = []
        for i in range(TILE):
            at = builder.add(args[1], builder.mul(args[2], ir.Constant(index, i)))
            ptr = builder.bitcast(builder.gep(s.data, [at]), svec.as_pointer())
            rows.append(builder.load(ptr, align=sty.dtype.bitwidth // 8))
        mask = ir.VectorType(ir.IntType(32), TILE)
        b = TILE // 2
        while b >= 1:
            out = list(rows)
            for i in range(TILE):
                if i & b:
                    continue
                lo = [j if not j & b else TILE + j - b for j in range(TILE)]
                hi = [j + b if not j & b else TILE + j for j in range(TILE)]
                out[i] = builder.shuffle_vector(rows[i], rows[i + b], ir.Constant(mask, lo))
                out[i + b] = builder.shuffle_vector(rows[i], rows[i + b], ir.Constant(mask, hi))
            rows = out
            b //= 2
        for j in range(TILE):
            v = rows[j]
            if sty.dtype.bitwidth > dty.dtype.bitwidth:
                v = builder.fptrunc(v, dvec)
            elif sty.dtype.bitwidth < dty.dtype.bitwidth:
                v = builder.fpext(v, dvec)
            at = builder.add(args[4], builder.mul(args[5], ir.Constant(index, j)))
            ptr = builder.bitcast(builder.gep(d.data, [at]), dvec.as_pointer())
            if stream:
                store = builder.store(v, ptr, align=CACHE_LINE)
                hint = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
                store.set_metadata("nontemporal", hint)
            else:
                builder.store(v, ptr, align=dty.dtype.bitwidth // 8)
        return context.get_dummy_value()

    def make(stream):
        @intrinsic
        def transpose_tile(typingctx, src, s0, sstride, dst, d0, dstride):
            sig = types.void(src, s0, sstride, dst, d0, dstride)
            return sig, functools.partial(codegen, stream)
        return transpose_tile

    @intrinsic
    def store_fence(typingctx):
        def fence(context, builder, signature, args):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse.sfence")
            builder.call(fn, [])
            return context.get_dummy_value()
        return types.void(), fence

    return make(False), make(True), store_fence


_JIT: dict = {}
_KERNELS = ("_causal_start", "_causal", "_nonfinite_lanes", "_anticausal_start", "_anticausal",
            "_lines", "_copy_rows", "_transpose_in", "_transpose_out", "_gather", "_rows")


def _compiled():
    """The numba-compiled kernels (compiled once per process, cached on disk), as a dict."""
    if not _JIT:
        import numba

        namespace = globals()
        (namespace["_transpose_tile"], namespace["_transpose_tile_stream"],
         namespace["_store_fence"]) = _tile_intrinsics()
        options = dict(nogil=True, cache=True, error_model="numpy",
                       fastmath={"contract"})     # fused multiply-adds, no reassociation
        for name in _KERNELS:
            namespace[name] = numba.njit(**options)(_PY[name])
        _JIT.update({name: namespace[name] for name in ("_lines", "_copy_rows", "_rows",
                                                        "_nonfinite_lanes")})
    return _JIT


_PY = {name: globals()[name] for name in _KERNELS}


# ---------------------------------------------------------------------------------------
# Passes
# ---------------------------------------------------------------------------------------

def _run(jobs, workers: int) -> int:
    """Run the jobs (callables returning a count of lines with NaN/Inf) on ``workers``
    threads (candidates.runtime.run_jobs); the sum of the counts."""
    from candidates.runtime import run_jobs

    counts = [0] * len(jobs)

    def job(i):
        counts[i] = jobs[i]()
    run_jobs([functools.partial(job, i) for i in range(len(jobs))], workers)
    return sum(counts)


def _buffers(**slots):
    """This thread's scratch arrays, slot=(size, dtype) (candidates.runtime.scratch),
    each starting on a cache line."""
    from candidates.runtime import scratch

    out = []
    for name, (size, dtype) in slots.items():
        step = CACHE_LINE // np.dtype(dtype).itemsize
        flat = scratch(__name__, name, (size + step,), dtype)
        start = (-flat.ctypes.data // flat.itemsize) % step
        out.append(flat[start:start + size])
    return out


def _misalignment(a) -> int:
    """Samples from the cache line before a's data to its first sample."""
    return (a.ctypes.data % CACHE_LINE) // a.itemsize


def _empty(shape, dtype) -> np.ndarray:
    """np.empty(shape, dtype) starting on a cache line (a view of a slightly larger
    array): the last pass streams its result into it a line at a time. One sample per
    HUGE_PAGE is written here, so the calling thread maps the (transparent huge) pages
    before the workers start: first touches from two threads at once left one of them
    stalled 20-30 ms in a call out of four (4096^2 float32, this machine); touched
    first, the median call time dropped 19.8 -> 18.5 ms and the slowest of 30 52 -> 22."""
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    line = CACHE_LINE // dtype.itemsize
    flat = np.empty(size + line, dtype)
    flat[::HUGE_PAGE // dtype.itemsize] = 0
    start = (-flat.ctypes.data // dtype.itemsize) % line
    return flat[start:start + size].reshape(shape)


def _stride(W: int) -> int:
    """Row stride (samples) of a buffer of W lanes: whole cache lines (of float32), and
    not a multiple of 256 (rows a power of two apart share the same L1 sets)."""
    S = -(-W // 16) * 16
    return S + 16 if S % 256 == 0 else S


def _chunk(n: int, pad: int) -> int:
    return min(n, max(CHUNK, CHUNK_PER_PAD * pad))


def _lanes(rows: int, dtype, most: int) -> int:
    """Lanes of a buffer of ``rows`` rows: at most ``most`` and LANE_BYTES (whole TILEs,
    at least one)."""
    fit = LANE_BYTES // (rows * np.dtype(dtype).itemsize) // TILE * TILE
    return max(TILE, min(most, fit))


def _sweep_pass(src, dst, outer, n, inner, sigmas, border, cval, cdtypes, workers) -> int:
    """Filter the (outer, n, inner) C-contiguous src along its middle axis (sigma
    sigmas[0]) into dst (never src); when sigmas[1] > 0, also along the last axis
    (inner is then its length): each chunk of rows goes on through _rows straight from
    the cache. Strips of at most STRIP columns, cut in row ranges for the threads."""
    jit = _compiled()
    pad = line_padding(sigmas[0])
    idx = source_map(n, pad, border)
    c = coefficients(sigmas[0]).astype(cdtypes[0])
    chunk = _chunk(n, pad)
    rows_too = len(sigmas) > 1 and sigmas[1] > 0
    want = MIN_JOBS_PER_THREAD * workers
    width = inner
    if not rows_too:             # strips within LANE_BYTES, more (of >= 64 lanes) for threads
        count = max(-(-inner // _lanes(chunk + 2 * pad, cdtypes[0], STRIP)),
                    min(-(-want // outer), inner // 64))
        width = -(-inner // count)
        width = min(inner, -(-width // TILE) * TILE)
    S = _stride(width)
    crow = np.full(width, cval, src.dtype)
    strips = [(j0, min(width, inner - j0)) for j0 in range(0, inner, width)]
    parts = max(1, min(n // max(chunk, 2 * pad), -(-want // (outer * len(strips)))))
    bounds = [n * i // parts for i in range(parts + 1)]
    flat_src, flat_dst = src.reshape(-1), dst.reshape(-1)
    if rows_too:
        pad_h = line_padding(sigmas[1])
        idx_h = source_map(inner, pad_h, border)
        ident = _identity(idx_h.shape[0])
        c_h = coefficients(sigmas[1]).astype(cdtypes[1])
        chunk_h = _chunk(inner, pad_h)
        band = min(chunk, _lanes(chunk_h + 2 * pad_h, np.float64, BAND))
        S_h = _stride(band)
        h = min(inner, pad_h + 1)
        dalign = _misalignment(flat_dst)

    def job(o, j0, W, i0, i1):
        V, stc, sta = _buffers(V=((chunk + 2 * pad) * S, cdtypes[0]), stc=(6 * W, cdtypes[0]),
                               sta=(6 * W, cdtypes[0]))
        if rows_too:
            X, H, E, T, stc_h, sta_h = _buffers(
                X=((chunk_h + 2 * pad_h) * S_h, cdtypes[0]), H=(h * S_h, cdtypes[0]),
                E=(h * S_h, cdtypes[0]), T=((chunk_h + 2 * pad_h) * S_h, cdtypes[1]),
                stc_h=(6 * band, cdtypes[1]), sta_h=(6 * band, cdtypes[1]))
        bad = 0
        base = o * n * inner + j0
        for c0 in range(i0, i1, chunk):
            c1 = min(c0 + chunk, i1)
            jit["_lines"](flat_src, crow, base, inner, W, idx, pad, c, i0, c0, c1, V, S, stc, sta)
            if not rows_too:
                jit["_copy_rows"](V, pad * S, S, W, c1 - c0, flat_dst, base + c0 * inner, inner)
                continue
            for r0 in range(pad, pad + c1 - c0, band):
                lines = min(band, pad + c1 - c0 - r0)     # V rows r0.. = out rows c0 + r0 - pad..
                bad += jit["_rows"](V, S, flat_dst, inner, dalign, idx_h, ident, pad_h, c_h,
                                    float(cval), r0, o * n + c0 + r0 - pad, lines, S_h, chunk_h,
                                    X, H, E, T, stc_h, sta_h)
        return bad + jit["_nonfinite_lanes"](stc, W)

    return _run([functools.partial(job, o, j0, W, bounds[p], bounds[p + 1])
                 for o in range(outer) for j0, W in strips for p in range(parts)], workers)


def _rows_pass(src, dst, rows, n, sigma, border, cval, cdtype, workers) -> int:
    """Filter the rows of the (rows, n) C-contiguous src into dst (may be src), in bands
    of at most BAND rows."""
    kernel = _compiled()["_rows"]
    pad = line_padding(sigma)
    idx = source_map(n, pad, border)
    chunk = _chunk(n, pad)
    ident = _identity(idx.shape[0])
    c = coefficients(sigma).astype(cdtype)
    want = -(-rows // (MIN_JOBS_PER_THREAD * workers))          # lines per band
    width = min(_lanes(chunk + 2 * pad, np.float64, BAND), max(TILE, -(-want // TILE) * TILE))
    h = min(n, pad + 1)
    flat_src, flat_dst = src.reshape(-1), dst.reshape(-1)
    dalign = _misalignment(flat_dst)

    def band(r0, W):
        S = _stride(W)
        X, H, E, T, stc, sta = _buffers(X=((chunk + 2 * pad) * S, src.dtype), H=(h * S, src.dtype),
                                        E=(h * S, src.dtype), T=((chunk + 2 * pad) * S, cdtype),
                                        stc=(6 * W, cdtype), sta=(6 * W, cdtype))
        return kernel(flat_src, n, flat_dst, n, dalign, idx, ident, pad, c, float(cval), r0, r0, W,
                      S, chunk, X, H, E, T, stc, sta)

    return _run([functools.partial(band, r0, min(width, rows - r0))
                 for r0 in range(0, rows, width)], workers)


@functools.lru_cache(maxsize=16)
def _identity(n: int) -> np.ndarray:
    out = np.arange(n, dtype=np.int64)
    out.setflags(write=False)
    return out


def _fits(m: int, n: int, sigma: float, cdtype) -> bool:
    """Whether the first-axis sweep of (n, m) planes holds whole rows in LANE_BYTES."""
    pad = line_padding(sigma)
    return (_chunk(n, pad) + 2 * pad) * _stride(m) * np.dtype(cdtype).itemsize <= LANE_BYTES


def _state_dtype(storage, sigma):
    return np.float32 if storage == np.float32 and sigma <= F32_STATE_SIGMA else np.float64


def _filter_all(x, sigmas, border, cval, workers):
    """One pass per filtered axis over the C-contiguous x (storage dtype, never written).
    Returns (a new array, how many lines held NaN/Inf)."""
    shape = x.shape
    storage = x.dtype
    last = len(shape) - 1
    bad = 0
    src = x
    spare = None                 # an array of ours that no later pass reads
    fused = len(shape) >= 2 and sigmas[-1] > 0 and sigmas[-2] > 0 and _fits(
        shape[-1], shape[-2], sigmas[-2], _state_dtype(storage, sigmas[-2]))
    for axis, s in enumerate(sigmas):
        if s == 0 or (fused and axis == last):
            continue
        cdtype = _state_dtype(storage, s)
        outer, n, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
        if fused and axis == last - 1:   # the last two axes in one sweep
            dst = spare if spare is not None else _empty(shape, storage)
            bad += _sweep_pass(src, dst, outer, n, inner, sigmas[-2:], border, cval,
                               (cdtype, _state_dtype(storage, sigmas[-1])), workers)
        elif axis == last:       # rows: in place when src is ours
            dst = src if src is not x else _empty(shape, storage)
            bad += _rows_pass(src.reshape(outer, n), dst.reshape(outer, n), outer, n, s, border,
                              cval, cdtype, workers)
        else:                    # columns: always into another array
            dst = spare if spare is not None else _empty(shape, storage)
            bad += _sweep_pass(src, dst, outer, n, inner, (s,), border, cval, (cdtype,), workers)
        if dst is not src:
            spare = src if src is not x else None
        src = dst
    return (src if src is not x else np.array(x)), bad


def _filter(x, sigmas, border, cval, storage, workers):
    """_filter_all on x as storage dtype; trailing unfiltered axes of fewer than
    BATCH_INNER samples (the channels of an (H, W, C) image) are moved in front first
    and back after (two copies): lanes that few run nearly scalar."""
    k = 0
    while k < x.ndim - 1 and sigmas[x.ndim - 1 - k] == 0:
        k += 1
    if k == 0 or math.prod(x.shape[x.ndim - k:]) >= BATCH_INNER:
        return _filter_all(np.ascontiguousarray(x, dtype=storage), sigmas, border, cval, workers)
    order = tuple(range(x.ndim - k, x.ndim)) + tuple(range(x.ndim - k))
    moved = np.ascontiguousarray(x.transpose(order), dtype=storage)
    a, bad = _filter_all(moved, tuple(sigmas[i] for i in order), border, cval, workers)
    return np.ascontiguousarray(a.transpose(np.argsort(order))), bad


def _nonfinite_placement(x, sigmas, truncate, border):
    """Where the direct (truncated) filter gives NaN, +inf or -inf: some NaN, or both
    infinities, within the window -> NaN; only +inf -> +inf; only -inf -> -inf."""
    masks = []
    for test in (np.isnan, np.isposinf, np.isneginf):
        m = test(x)
        for axis, s in enumerate(sigmas):
            if s == 0:
                continue
            r = int(truncate * s + 0.5)
            n = x.shape[axis]
            idx = source_map(n, r, border)
            ext = np.take(m, np.maximum(idx, 0), axis=axis)
            if border == "constant":   # cval is finite: the constant border adds nothing
                shape = [1] * m.ndim
                shape[axis] = idx.size
                ext = ext & (idx >= 0).reshape(shape)
            counts = np.cumsum(ext, axis=axis, dtype=np.int64)
            counts = np.concatenate([np.zeros_like(np.take(counts, [0], axis=axis)), counts], axis=axis)
            hi = np.take(counts, np.arange(2 * r + 1, n + 2 * r + 1), axis=axis)
            lo = np.take(counts, np.arange(0, n), axis=axis)
            m = (hi - lo) > 0
        masks.append(m)
    nan, pos, neg = masks
    return nan | (pos & neg), pos & ~nan & ~neg, neg & ~nan & ~pos


def gaussian(x, sigma, *, border="constant", cval=0.0, truncate=4.0, out_dtype=None):
    from candidates.runtime import threads

    x = np.asarray(x)
    sigmas = _sigmas(sigma, x.ndim)
    out = result_dtype(x.dtype)
    storage = np.float64 if out == np.float64 else np.float32
    # one thread per PIXELS_PER_THREAD samples at most: below that handing out jobs costs
    # more than it saves (much more on a busy machine)
    workers = max(1, min(threads(), x.size // PIXELS_PER_THREAD))
    if not any(sigmas):
        a, bad = np.array(x, dtype=storage), 0
    else:
        a, bad = _filter(x, sigmas, border, cval, storage, workers)
    if bad:  # recompute from the finite values, then place NaN/Inf as the direct filter does
        clean = np.where(np.isfinite(x), x, 0).astype(storage)
        a, _ = _filter(clean, sigmas, border, cval, storage, workers)
        nan, pos, neg = _nonfinite_placement(x, sigmas, truncate, border)
        a[nan], a[pos], a[neg] = np.nan, np.inf, -np.inf
    if out_dtype is not None:
        return round_saturate(a, out_dtype)
    return a.astype(out, copy=False)

