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
#   included); the recursion starts in its steady state for the outermost value, so what
#   lies beyond P weighs less than TAIL = 1e-6 of the output. Lanes: LANES = 64 lines
#   are copied into a per-thread buffer with the lanes innermost, 64 neighbouring columns
#   along a non-last axis (contiguous rows of 256 bytes), 64 rows along the last axis
#   (a transpose in 16-sample tiles, one cache line per row visit). The recursion runs
#   down the buffer four steps per visit of its states, vectorised across the lanes,
#   which also hides the recurrence latency. Blocks go to numba's threads one by one
#   (prange, chunksize 1); the first pass reads the input, later passes run in place.
# Wins: sigma >= ~3 on big images: flat in sigma. 4096x4096 float32, one thread, CPU
#   time: 34-40 ms for every sigma, against GaussianBlur 63 ms (sigma 3), 116 (5),
#   705 (20).
# Does not win: sigma <= ~2 (GaussianBlur: 21 ms at sigma 1, 41 at 2: a 9- or 17-tap
#   kernel is cheaper than two copies, two transposed copies and 32 multiply-adds),
#   tiny images (the 9-sigma extension per side dominates).
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
#   buffers store the image's working type. Non-finite inputs: a recursion smears a NaN along its whole
#   line, so such lines are detected (the causal state ends non-finite), the image is
#   filtered again with non-finite values set to 0, and the NaN/Inf placement of the
#   direct filter (any non-finite value within the truncated window) is written back.
from __future__ import annotations

import functools
import math
import threading

import numpy as np

from refimpl.dtypes import result_dtype, round_saturate

LIBRARY = "numba"
DEVICE = "cpu"

SIGMA_MIN = 1.0
SIGMA_MAX = 1000.0
TRUNCATE_MIN = 4.0
MAX_FILTERED_AXES = 3
TAIL = 1e-6          # weight of the samples beyond the line extension (steady-state start)
LANES = 64           # lines filtered together (the vector loops run across them)
# float32 images: the recursion runs in float32 up to this sigma (twice as many lanes per
# vector), in float64 above. Measured float32-state error per axis, / max|x| (steps,
# random, square waves, 1000 +- 1 offsets): 9e-7 at sigma 5, 7.5e-6 at 20, 2.2e-5 at 32,
# 1e-4 at 64, 2.9e-4 at 100 (it grows like sigma^2: the poles approach 1).
F32_STATE_SIGMA = 32.0
# Threads: one per PIXELS_PER_THREAD samples at most (about 5 ms of one thread's work).
# 1024x1024 float32, sigma 5, on the shared 2-core machine: one thread 2.3 ms (median
# 2.4-2.7); two threads 1.2 ms at best but a median of 8-20 ms (the join waits for a
# descheduled thread).
PIXELS_PER_THREAD = 1 << 21

# Deriche (1993), 4th order: (a0, a1, b0, w0) and (c0, c1, b1, w1) of the two damped cosines
DERICHE = ((1.680, 3.735, 1.783, 0.6318), (-0.6803, -0.2598, 1.723, 1.997))


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
    if border == "constant":
        out = np.pad(index, pad, mode="constant", constant_values=-1)
    else:
        out = np.pad(index, pad, mode=border)
    out.setflags(write=False)
    return out


# ---------------------------------------------------------------------------------------
# Kernels (plain Python here; numba-compiled on first use by _compiled())
#
# Every index below is an unsigned integer: numba then skips its negative-index
# wraparound, which otherwise stops LLVM from vectorising loops that walk backwards.
# ---------------------------------------------------------------------------------------

def _recurse(X, T, npad, nl, c):
    """Filter the LANES lines held lane-innermost in X (npad rows of LANES) into T:
    T = causal + anticausal. The states and the arithmetic are in c's dtype. Returns how many of the first nl lines held a NaN or an
    infinity (the causal state is then not finite: a recursion never leaves NaN/Inf)."""
    n0a, n1a, m1a, m2a, d1a, d2a, gca, gaa = c[0, 0], c[0, 1], c[0, 2], c[0, 3], c[0, 4], c[0, 5], c[0, 6], c[0, 7]
    n0b, n1b, m1b, m2b, d1b, d2b, gcb, gab = c[1, 0], c[1, 1], c[1, 2], c[1, 3], c[1, 4], c[1, 5], c[1, 6], c[1, 7]
    L = np.uint64(LANES)
    L2 = np.uint64(2 * LANES)
    L3 = np.uint64(3 * LANES)
    L4 = np.uint64(4 * LANES)
    L5 = np.uint64(5 * LANES)
    st = np.empty(6 * LANES, dtype=c.dtype)    # per lane: x, a[-1], a[-2], b[-1], b[-2], x'
    # ---- causal: y+[k] = a[k] + b[k], a[k] = n0 x[k] + n1 x[k-1] - d1 a[k-1] - d2 a[k-2]
    for l in range(LANES):
        j = np.uint64(l)
        v = X[j]                     # steady state for x[k] = x[0], k < 0
        st[j] = v
        st[L + j] = gca * v
        st[L2 + j] = gca * v
        st[L3 + j] = gcb * v
        st[L4 + j] = gcb * v
    k = 0
    while k + 4 <= npad:                          # four steps per visit of the states
        base = np.uint64(k * LANES)
        for l in range(LANES):
            j = np.uint64(l)
            i = base + j
            x0 = st[j]
            a1 = st[L + j]
            a2 = st[L2 + j]
            b1 = st[L3 + j]
            b2 = st[L4 + j]
            x1 = X[i]
            a2 = n0a * x1 + n1a * x0 - d1a * a1 - d2a * a2
            b2 = n0b * x1 + n1b * x0 - d1b * b1 - d2b * b2
            T[i] = a2 + b2
            x0 = X[i + L]
            a1 = n0a * x0 + n1a * x1 - d1a * a2 - d2a * a1
            b1 = n0b * x0 + n1b * x1 - d1b * b2 - d2b * b1
            T[i + L] = a1 + b1
            x1 = X[i + L2]
            a2 = n0a * x1 + n1a * x0 - d1a * a1 - d2a * a2
            b2 = n0b * x1 + n1b * x0 - d1b * b1 - d2b * b2
            T[i + L2] = a2 + b2
            x0 = X[i + L3]
            a1 = n0a * x0 + n1a * x1 - d1a * a2 - d2a * a1
            b1 = n0b * x0 + n1b * x1 - d1b * b2 - d2b * b1
            T[i + L3] = a1 + b1
            st[j] = x0
            st[L + j] = a1
            st[L2 + j] = a2
            st[L3 + j] = b1
            st[L4 + j] = b2
        k += 4
    while k < npad:
        base = np.uint64(k * LANES)
        for l in range(LANES):
            j = np.uint64(l)
            x1 = X[base + j]
            ya = n0a * x1 + n1a * st[j] - d1a * st[L + j] - d2a * st[L2 + j]
            yb = n0b * x1 + n1b * st[j] - d1b * st[L3 + j] - d2b * st[L4 + j]
            st[j] = x1
            st[L2 + j] = st[L + j]
            st[L + j] = ya
            st[L4 + j] = st[L3 + j]
            st[L3 + j] = yb
            T[base + j] = ya + yb
        k += 1
    bad = 0
    for l in range(nl):
        if not np.isfinite(st[L + np.uint64(l)] + st[L3 + np.uint64(l)]):
            bad += 1
    # ---- anticausal: y-[k] = a[k] + b[k], a[k] = m1 x[k+1] + m2 x[k+2] - d1 a[k+1] - d2 a[k+2]
    last = np.uint64((npad - 1) * LANES)
    for l in range(LANES):
        j = np.uint64(l)
        v = X[last + j]              # steady state for x[k] = x[npad-1], k >= npad
        st[j] = v
        st[L5 + j] = v
        st[L + j] = gaa * v
        st[L2 + j] = gaa * v
        st[L3 + j] = gab * v
        st[L4 + j] = gab * v
    k = 0                                         # rows npad-1-k, counted upwards
    while k + 4 <= npad:
        base = np.uint64((npad - 4 - k) * LANES)
        for l in range(LANES):
            j = np.uint64(l)
            i = base + j
            x1 = st[j]
            x2 = st[L5 + j]
            a1 = st[L + j]
            a2 = st[L2 + j]
            b1 = st[L3 + j]
            b2 = st[L4 + j]
            a2 = m1a * x1 + m2a * x2 - d1a * a1 - d2a * a2
            b2 = m1b * x1 + m2b * x2 - d1b * b1 - d2b * b2
            x2 = X[i + L3]
            T[i + L3] = T[i + L3] + (a2 + b2)
            a1 = m1a * x2 + m2a * x1 - d1a * a2 - d2a * a1
            b1 = m1b * x2 + m2b * x1 - d1b * b2 - d2b * b1
            x1 = X[i + L2]
            T[i + L2] = T[i + L2] + (a1 + b1)
            a2 = m1a * x1 + m2a * x2 - d1a * a1 - d2a * a2
            b2 = m1b * x1 + m2b * x2 - d1b * b1 - d2b * b2
            x2 = X[i + L]
            T[i + L] = T[i + L] + (a2 + b2)
            a1 = m1a * x2 + m2a * x1 - d1a * a2 - d2a * a1
            b1 = m1b * x2 + m2b * x1 - d1b * b2 - d2b * b1
            x1 = X[i]
            T[i] = T[i] + (a1 + b1)
            st[j] = x1
            st[L5 + j] = x2
            st[L + j] = a1
            st[L2 + j] = a2
            st[L3 + j] = b1
            st[L4 + j] = b2
        k += 4
    while k < npad:
        base = np.uint64((npad - 1 - k) * LANES)
        for l in range(LANES):
            j = np.uint64(l)
            ra = m1a * st[j] + m2a * st[L5 + j] - d1a * st[L + j] - d2a * st[L2 + j]
            rb = m1b * st[j] + m2b * st[L5 + j] - d1b * st[L3 + j] - d2b * st[L4 + j]
            st[L5 + j] = st[j]
            st[j] = X[base + j]
            st[L2 + j] = st[L + j]
            st[L + j] = ra
            st[L4 + j] = st[L3 + j]
            st[L3 + j] = rb
            T[base + j] = T[base + j] + (ra + rb)
        k += 1
    return bad


def _axis_pass(src, dst, outer, n, inner, idx, pad, c, cval, scratch):
    """Filter the flat C-ordered (outer, n, inner) array src along its middle axis into
    dst (flat, same size; may be src itself). ``scratch`` (threads, 2, npad * LANES) holds
    each thread's buffers. Returns how many lines held NaN/Inf."""
    npad = idx.shape[0]
    columns = inner > 1
    if columns:                     # lanes: LANES neighbouring columns (contiguous)
        per = (inner + LANES - 1) // LANES
        blocks = outer * per
    else:                           # the last axis: lanes are LANES consecutive rows
        per = 1
        blocks = (outer + LANES - 1) // LANES
    L = np.uint64(LANES)
    plane = n * inner
    bad = 0
    for b in _prange(blocks):                 # blocks handed out one by one (chunksize 1)
        X = scratch[_thread_id(), 0]
        T = scratch[_thread_id(), 1]
        local = 0
        if columns:
            o = b // per
            j0 = (b % per) * LANES
            nl = min(LANES, inner - j0)
            for k in range(npad):
                s = idx[k]
                xb = np.uint64(k * LANES)
                if s < 0:
                    for l in range(nl):
                        X[xb + np.uint64(l)] = cval
                else:
                    sb = np.uint64(o * plane + s * inner + j0)
                    for l in range(nl):
                        X[xb + np.uint64(l)] = src[sb + np.uint64(l)]
            local += _recurse(X, T, npad, nl, c)
            for i in range(n):
                tb = np.uint64((pad + i) * LANES)
                db = np.uint64(o * plane + i * inner + j0)
                for l in range(nl):
                    dst[db + np.uint64(l)] = T[tb + np.uint64(l)]
        else:
            o0 = b * LANES
            nl = min(LANES, outer - o0)
            for k in range(npad):               # the border extension, through idx
                if pad <= k < pad + n:
                    continue
                s = idx[k]
                xb = np.uint64(k) * L
                for l in range(nl):
                    X[xb + np.uint64(l)] = cval if s < 0 else src[np.uint64((o0 + l) * n + s)]
            k0 = 0
            while k0 + 16 <= n:                 # the line itself: 16 x LANES tiles (a
                for l in range(nl):             # transpose; one cache line per row visit)
                    sb = np.uint64((o0 + l) * n + k0)
                    xb = np.uint64(k0 + pad) * L + np.uint64(l)
                    for kk in range(16):
                        X[xb + np.uint64(kk) * L] = src[sb + np.uint64(kk)]
                k0 += 16
            for l in range(nl):
                for k in range(k0, n):
                    X[np.uint64(k + pad) * L + np.uint64(l)] = src[np.uint64((o0 + l) * n + k)]
            local += _recurse(X, T, npad, nl, c)
            i0 = 0
            while i0 + 16 <= n:                 # back to rows, the same tiles
                for l in range(nl):
                    rb = np.uint64((o0 + l) * n + i0)
                    tb = np.uint64(pad + i0) * L + np.uint64(l)
                    for i in range(16):
                        dst[rb + np.uint64(i)] = T[tb + np.uint64(i) * L]
                i0 += 16
            for l in range(nl):
                for i in range(i0, n):
                    dst[np.uint64((o0 + l) * n + i)] = T[np.uint64(pad + i) * L + np.uint64(l)]
        bad += local
    return bad


_JIT: dict = {}


def _compiled():
    """The numba-compiled pass (compiled once per process, cached on disk)."""
    if not _JIT:
        import numba

        namespace = globals()
        namespace["_recurse"] = numba.njit(cache=True, fastmath=False)(_recurse_py)
        namespace["_prange"] = numba.prange
        namespace["_thread_id"] = numba.get_thread_id
        _JIT["axis_pass"] = numba.njit(parallel=True, cache=True, fastmath=False)(_axis_pass_py)
    return _JIT["axis_pass"]


_recurse_py = _recurse
_axis_pass_py = _axis_pass
_prange = range                 # numba.prange and numba.get_thread_id once compiled


def _thread_id():
    return 0


# ---------------------------------------------------------------------------------------
# The candidate
# ---------------------------------------------------------------------------------------

def _filter_all(a, sigmas, border, cval, first_src=None):
    """Run one pass per filtered axis; ``a`` (contiguous, storage dtype) is overwritten,
    written from ``first_src`` by the first pass. Returns (a, lines that held NaN/Inf)."""
    import numba

    axis_pass = _compiled()
    shape = a.shape
    npads = [shape[axis] + 2 * line_padding(s) for axis, s in enumerate(sigmas) if s > 0]
    scratch = _scratch(max(npads) * LANES, a.dtype)
    bad = 0
    src = first_src
    flat = a.reshape(-1)
    for axis, s in enumerate(sigmas):
        if s == 0:
            continue
        outer, n, inner = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])
        pad = line_padding(s)
        idx = source_map(n, pad, border)
        c = coefficients(s)
        if a.dtype == np.float32 and s <= F32_STATE_SIGMA:
            c = c.astype(np.float32)
        with numba.parallel_chunksize(1):
            bad += axis_pass(flat if src is None else src.reshape(-1), flat, outer, n, inner, idx,
                             pad, c, float(cval), scratch)
        src = None
    return a, bad


_LOCAL = threading.local()


def _scratch(size: int, dtype) -> np.ndarray:
    """Per-thread buffers (numba threads, 2, size), kept between calls of this Python
    thread (zeroed when made: lanes past the last line of a block stay finite). One per
    pool thread: numba.get_thread_id() can exceed get_num_threads() - 1 after
    set_num_threads() lowered the count."""
    import numba

    shape = (numba.config.NUMBA_NUM_THREADS, 2, size)
    kept = getattr(_LOCAL, "scratch", {}).get(np.dtype(dtype).name)
    if kept is None or kept.shape[2] < size:
        kept = np.zeros(shape, dtype=dtype)
        _LOCAL.__dict__.setdefault("scratch", {})[np.dtype(dtype).name] = kept
    return kept


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
    import numba

    from candidates.runtime import threads

    x = np.asarray(x)
    # one thread per PIXELS_PER_THREAD samples at most: below that a parallel region's
    # start and join cost more than they save (much more on a busy machine)
    useful = max(1, x.size // PIXELS_PER_THREAD)
    numba.set_num_threads(max(1, min(threads(), numba.config.NUMBA_NUM_THREADS, useful)))
    sigmas = _sigmas(sigma, x.ndim)
    out = result_dtype(x.dtype)
    storage = np.float64 if out == np.float64 else np.float32
    if not any(sigmas):
        a, bad = np.array(x, dtype=storage), 0
    elif x.dtype == storage and x.flags.c_contiguous:
        a, bad = _filter_all(np.empty(x.shape, dtype=storage), sigmas, border, cval, first_src=x)
    else:
        a, bad = _filter_all(np.ascontiguousarray(x, dtype=storage), sigmas, border, cval)
    if bad:  # recompute from the finite values, then place NaN/Inf as the direct filter does
        clean = np.where(np.isfinite(x), x, 0).astype(storage)
        a, _ = _filter_all(clean, sigmas, border, cval)
        nan, pos, neg = _nonfinite_placement(x, sigmas, truncate, border)
        a[nan], a[pos], a[neg] = np.nan, np.inf, -np.inf
    if out_dtype is not None:
        return round_saturate(a, out_dtype)
    return a.astype(out, copy=False)
