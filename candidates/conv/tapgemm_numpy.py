# tapgemm_numpy: conv_grad_weight as one GEMM per kernel tap (and group) over the
# border-extended planes laid end to end: no im2col matrix, no copy per tap.
#
#   x  --border (pad_into)-->  xs[c, n*P + i]     channel-major; image n's padded plane
#                                                  (P samples, row-major) at n*P; one
#                                                  spare tail of `reach` samples
#   dy --into zeros-------->   ds[o, n*P + i]     dy[n, o, p] where i is p's place in the
#                                                  padded plane; 0 everywhere else
#   tap r:  off = sum_a r_a * dilation_a * step_a          (step_a: samples per step on axis a)
#           dW[o, c, r] = ds[o, :] . xs[c, off : off + N*P]   one GEMM (Og x N*P) @ (N*P x Cg)
#           (Cg or Og matrix-vector products instead where either is at most 4: BLAS's GEMM
#           is slow on such thin products)
#
#   Output position p reads xp at p + r*dilation on every axis. In the flattened planes
#   that is one fixed offset per tap, so every tap is a contiguous slice of xs. Where the
#   slice runs past a row, a plane or the last image, ds holds zeros. xs and ds are the
#   calling thread's scratch buffers (runtime.scratch): fresh multi-MiB arrays would be
#   page-faulted in on every call, which cost more than the nine dot products. The taps
#   (and groups) are jobs for runtime.run_blas_jobs on runtime.threads() workers, each
#   product on one BLAS thread: BLAS's own threads on these short products contended with
#   the other libraries' pools (a 500x500 forward + backward at 2 threads: 16 ms, against
#   4.3 ms with BLAS on one thread).
#
# Wins: one input or one output channel per group over large planes: the image-form
#   kernel gradient (seed-grad-kernel: 500x500 float64, 3x3: nine dot products of 252004
#   samples, no buffer bigger than the padded image; ~3.5x faster than torch's unfold +
#   GEMM on one thread), 1 -> few and few -> 1 channel layers, depthwise with few groups
#   (RGB), 1-D and 3-D signals, large kernels on one channel (15x15 on 1000x1000: ~5x).
#   The extra work is the zeros of ds: (k-1)*dilation rows and columns per plane.
# Does not win: several channels on both sides (3 -> 3: each tap is a thin product that
#   reads the planes again; torch's kernels ~1.7x faster), one input channel with many
#   outputs (from ~16 outputs im2col's single GEMM reads dy once, not once per tap),
#   many groups (depthwise over 32 channels: a Python loop of small products, torch ~9x
#   faster).
# Applies: conv_grad_weight with stride 1 on 1-3 spatial axes: any dilation, groups,
#   padding ('same' included) and border (pad_into: every width), float16/32/64 arrays of
#   any layout (both are copied into the planes).
# Does not apply: stride > 1 (a tap's samples would be strided, no longer one slice);
#   bfloat16 (numpy has none: conv_torch takes those tensors).
# Numerics: each dW element is one BLAS dot/GEMM of N*prod(out) products in the compute
#   type (float32 for float16 arrays, the result rounded once at the end): the 'direct'
#   bound with conv_grad_weight's K. NaN/Inf: a tap's slice also reads samples that the
#   oracle's sum for that tap does not (multiplied by the zeros of ds), and 0 * Inf is
#   NaN, so NONFINITE is False: the plan runs another candidate when x or dy holds NaN/Inf.
from __future__ import annotations

import math

from candidates.runtime import pad_into, release_scratch, run_blas_jobs, scratch, threads
from refimpl.dtypes import compute_dtype
from refimpl.geometry import as_tuple, layer_padding, positive_tuple

LIBRARY = "numpy"
DEVICE = "cpu"
ERROR = "direct"
NONFINITE = False   # a slice reads beyond the oracle's taps (times zero): Inf would give NaN

# BLAS's GEMM kernels are slow on products this thin (Og x Cg of 3 x 3 with an inner size
# of N*P: ~4x slower than Cg matrix-vector products on one core); from 8 x 8 the GEMM wins
GEMV_UP_TO = 4


def supports(spec):
    if spec.op != "conv_grad_weight":
        return f"tapgemm_numpy does not compute {spec.op}"
    if "bfloat16" in spec.dtypes:
        return "numpy has no bfloat16 (conv_torch takes bfloat16 tensors)"
    nsp = len(spec.shapes[0]) - 2
    if any(s != 1 for s in as_tuple(spec.kwargs["stride"], nsp, "stride")):
        return "stride > 1: a tap's samples would be strided, not one contiguous slice"
    return None


def clear_cache() -> None:
    """Forget the calling thread's scratch planes."""
    release_scratch(__name__)


def conv_grad_weight(x, dy, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                     border="constant", cval=0.0):
    import numpy as np

    out_dtype = np.result_type(x, dy)
    acc = compute_dtype(out_dtype)
    nsp = x.ndim - 2
    kernel = tuple(int(k) for k in weight_shape[2:])
    if any(s != 1 for s in positive_tuple(stride, nsp, "stride")):
        raise ValueError(f"tapgemm_numpy computes stride 1 only, got stride={stride!r}")
    dilation = positive_tuple(dilation, nsp, "dilation")
    pads = layer_padding(x.shape[2:], kernel, padding, 1, dilation)
    batch, channels, outputs = x.shape[0], x.shape[1], dy.shape[1]
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads))
    steps = [math.prod(padded[a + 1:]) for a in range(nsp)]
    plane = math.prod(padded)
    length = batch * plane
    reach = sum((k - 1) * d * s for k, d, s in zip(kernel, dilation, steps))   # last tap's offset
    # channel-major so that a channel's N planes are one run of samples
    order = (1, 0) + tuple(range(2, x.ndim))
    xs = scratch(__name__, "x", (channels, length + reach), acc)
    xs[:, length:] = 0
    pad_into(xs[:, :length].reshape((channels, batch) + padded), x.transpose(order),
             ((0, 0), (0, 0)) + tuple(pads), border, cval)
    ds = scratch(__name__, "dy", (outputs, length), acc)
    planes = ds.reshape((outputs, batch) + padded)
    for a, m in enumerate(dy.shape[2:]):            # zeros past the outputs on every axis
        planes[(slice(None),) * (2 + a) + (slice(m, None),)] = 0
    planes[(slice(None), slice(None)) + tuple(slice(0, m) for m in dy.shape[2:])] = \
        dy.transpose(order)
    cg, og = channels // groups, outputs // groups
    dw = np.empty(tuple(weight_shape), acc)

    def tap(r, g):
        def job():
            off = sum(ra * d * s for ra, d, s in zip(r, dilation, steps))
            taps = xs[g * cg:(g + 1) * cg, off:off + length]                 # (Cg, N*P) view
            grads = ds[g * og:(g + 1) * og]                                  # (Og, N*P)
            block = dw[(slice(g * og, (g + 1) * og), slice(None)) + r]       # (Og, Cg) view
            if min(cg, og) > GEMV_UP_TO:
                block[...] = grads @ taps.T
            elif cg <= og:
                for c in range(cg):
                    block[:, c] = grads @ taps[c]
            else:
                for o in range(og):
                    block[o] = taps @ grads[o]
        return job

    jobs = [tap(r, g) for r in np.ndindex(*kernel) for g in range(groups)]
    workers = threads()
    if workers == 1:        # BLAS as the caller set it (one thread under convbench.threads(1))
        for job in jobs:
            job()
    else:                   # the taps split between the workers, each on one BLAS thread
        run_blas_jobs(jobs, workers)
    return dw.astype(out_dtype, copy=False)
