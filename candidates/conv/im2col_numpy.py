# im2col_numpy: convolution layers as matrix products on an im2col matrix (numpy + BLAS).
#
#   xp = pad(x, border)             cols[n, (c, r), p] = xp[n, g*Cg + c, p*stride + r*dilation]
#   +-------------+                 +-----------------------+
#   | C x H' x W' |  --gather-->    | Cg*R*S  x  P*Q        |   (a strided view, copied in
#   +-------------+                 +-----------------------+    chunks of <= 64 MiB)
#   y[n, group g] = W_g (Og x Cg*R*S)  @  cols                    one GEMM per group and chunk
#
#   conv_grad_weight: dW_g = dy_g (Og x n*P*Q) @ cols^T (n*P*Q x Cg*R*S), summed over chunks
#   conv_grad_input:  cols = W_g^T @ dy_g, then col2im: every tap r scatter-adds its slice
#                     back into the padded gradient, whose border is folded back onto the
#                     input samples it was read from (refimpl.pad.source_index); constant
#                     borders are cropped
#   conv_transpose:   conv_grad_input of x read as dy (w is (C, O/groups, *k), the conv weight
#                     of the mirrored layer), plus bias; output_padding >= stride extends x
#                     with zeros
#   conv_grad_bias:   dy summed over N and space
#
# Wins: needs nothing but numpy; the work is one BLAS GEMM per group, fast for many channels
#   (C/groups * R * S large), the textbook answer to "naive per-channel loops are too slow".
# Does not win: depthwise layers (groups = C: a GEMM of one row per group) and 1-channel
#   images with big kernels (the cols matrix is R*S times the image); im2col copies R*S
#   times the input per chunk, so memory traffic dominates for small C.
# Applies: every case: 1-3 spatial axes, every border (numpy.pad's names are ours, any width),
#   stride, dilation, groups, bias, 'same' with stride.
# Does not apply: bfloat16 (numpy has no such dtype; conv_torch takes those tensors).
# Numerics: BLAS dot products in the compute type (float32 for float16, result rounded once
#   at the end): the 'direct' bound.
from __future__ import annotations

import math

import numpy as np

from candidates.runtime import extend
from refimpl.dtypes import compute_dtype
from refimpl.geometry import as_tuple, conv_output_shape, layer_padding, positive_tuple
from refimpl.pad import source_index

LIBRARY = "numpy"
DEVICE = "cpu"
ERROR = "direct"
NONFINITE = True   # every product summed: NaN/Inf land as in the oracle

CHUNK_BYTES = 64 * 2**20   # bound on the im2col buffer


def supports(spec):
    if spec.op not in ("conv", "conv_transpose", "conv_grad_input", "conv_grad_weight",
                       "conv_grad_bias"):
        return f"im2col_numpy does not compute {spec.op}"
    if "bfloat16" in spec.dtypes:
        return "numpy has no bfloat16 (conv_torch takes bfloat16 tensors)"
    return None


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

def _compute_dtype(*arrays):
    out = np.result_type(*[a.dtype for a in arrays if a is not None])
    return out, compute_dtype(out)


def _geometry(in_spatial, kernel, stride, padding, dilation):
    n = len(in_spatial)
    stride = positive_tuple(stride, n, "stride")
    dilation = positive_tuple(dilation, n, "dilation")
    pads = layer_padding(in_spatial, kernel, padding, stride, dilation)
    out = conv_output_shape(in_spatial, kernel, pads, stride, dilation)
    return stride, dilation, pads, out


def _pad(x, pads, border, cval):
    width = ((0, 0), (0, 0)) + tuple(pads)
    if not any(lo or hi for lo, hi in pads):
        return x
    return extend(x, width, border, cval)


def _windows(xp, kernel, stride, dilation, out):
    """View (N, C, *out, *kernel) of xp: [n, c, p, r] = xp[n, c, p*stride + r*dilation]."""
    st = xp.strides
    shape = xp.shape[:2] + tuple(out) + tuple(kernel)
    strides = st[:2] + tuple(s * a for s, a in zip(st[2:], stride)) + \
        tuple(s * d for s, d in zip(st[2:], dilation))
    return np.lib.stride_tricks.as_strided(xp, shape, strides, writeable=False)


def _chunks(batch, out, per_position_bytes):
    """(n slice, first-axis slice) pairs whose cols buffer stays under CHUNK_BYTES."""
    row_bytes = per_position_bytes * math.prod(out[1:])
    rows = max(1, CHUNK_BYTES // max(row_bytes, 1))
    if rows >= out[0]:
        images = max(1, rows // out[0])
        for n0 in range(0, batch, images):
            yield slice(n0, min(batch, n0 + images)), slice(0, out[0])
    else:
        for n0 in range(batch):
            for r0 in range(0, out[0], rows):
                yield slice(n0, n0 + 1), slice(r0, min(out[0], r0 + rows))


def _cols(win, nsl, rsl, channels, kernel):
    """cols (n, Cg*K, P) for the image chunk nsl, output rows rsl, input channels."""
    part = win[nsl, channels, rsl]                   # (n, Cg, *out_chunk, *kernel)
    nsp = len(kernel)
    order = (0, 1) + tuple(range(2 + nsp, 2 + 2 * nsp)) + tuple(range(2, 2 + nsp))
    part = part.transpose(order)                     # (n, Cg, *kernel, *out_chunk)
    n, cg = part.shape[:2]
    return np.ascontiguousarray(part).reshape(n, cg * math.prod(kernel), -1)


def _fold(g, pads, border):
    """Fold the gradient of a padded array back onto the input, axis by axis."""
    for axis, (lo, hi) in enumerate(pads, start=2):
        if not (lo or hi):
            continue
        size = g.shape[axis] - lo - hi
        inner = [slice(None)] * g.ndim
        inner[axis] = slice(lo, lo + size)
        out = g[tuple(inner)].copy()
        if border != "constant":
            for j in list(range(lo)) + list(range(lo + size, lo + size + hi)):
                src = source_index(j - lo, size, border)
                dst = [slice(None)] * g.ndim
                dst[axis] = src
                take = [slice(None)] * g.ndim
                take[axis] = j
                out[tuple(dst)] += g[tuple(take)]
        g = out
    return g


def _grad_input(dy, w, in_spatial, stride, dilation, pads, groups, border, compute):
    """dx of conv for weight w (O, C/groups, *k) and output gradient dy (N, O, *out)."""
    batch, out_channels = dy.shape[:2]
    out = dy.shape[2:]
    kernel = w.shape[2:]
    cg, og = w.shape[1], out_channels // groups
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(in_spatial, pads))
    gp = np.zeros((batch, cg * groups) + padded, dtype=compute)
    wk = w.astype(compute, copy=False).reshape(out_channels, -1)
    dyc = dy.astype(compute, copy=False)
    per_position = cg * math.prod(kernel) * compute.itemsize
    for nsl, rsl in _chunks(batch, out, per_position):
        rows = range(*rsl.indices(out[0]))
        chunk_out = (len(rows),) + tuple(out[1:])
        for g in range(groups):
            dyg = dyc[nsl, g * og:(g + 1) * og, rsl].reshape(-1, og, math.prod(chunk_out))
            cols = np.matmul(wk[g * og:(g + 1) * og].T, dyg)   # (n, Cg*K, P)
            cols = cols.reshape((cols.shape[0], cg) + tuple(kernel) + chunk_out)
            target = gp[nsl, g * cg:(g + 1) * cg]
            for r in np.ndindex(*kernel):
                first = [rsl.start * stride[0] + r[0] * dilation[0]] + \
                    [ra * d for ra, d in zip(r[1:], dilation[1:])]
                sl = tuple(slice(f, f + s * (n - 1) + 1, s)
                           for f, s, n in zip(first, stride, chunk_out))
                target[(slice(None), slice(None)) + sl] += cols[(slice(None), slice(None)) + r]
    return _fold(gp, pads, border)


# ---------------------------------------------------------------------------------------
# the ops
# ---------------------------------------------------------------------------------------

def conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1, border="constant",
         cval=0.0):
    out_dtype, compute = _compute_dtype(x, w, bias)
    stride, dilation, pads, out = _geometry(x.shape[2:], w.shape[2:], stride, padding, dilation)
    xp = _pad(x.astype(compute, copy=False), pads, border, cval)
    win = _windows(xp, w.shape[2:], stride, dilation, out)
    batch, out_channels = x.shape[0], w.shape[0]
    cg, og = w.shape[1], out_channels // groups
    wk = w.astype(compute, copy=False).reshape(out_channels, -1)
    y = np.empty((batch, out_channels) + tuple(out), dtype=compute)
    per_position = cg * math.prod(w.shape[2:]) * compute.itemsize
    for nsl, rsl in _chunks(batch, out, per_position):
        for g in range(groups):
            cols = _cols(win, nsl, rsl, slice(g * cg, (g + 1) * cg), w.shape[2:])   # (n, Cg*K, P)
            res = np.matmul(wk[g * og:(g + 1) * og], cols)            # (n, Og, P)
            y[nsl, g * og:(g + 1) * og, rsl] = res.reshape(res.shape[:2] + (-1,) + tuple(out[1:]))
    if bias is not None:
        y += bias.astype(compute).reshape((1, -1) + (1,) * len(out))
    return y.astype(out_dtype, copy=False)


def conv_grad_input(dy, w, input_shape, *, stride=1, padding=0, dilation=1, groups=1,
                    border="constant", cval=0.0):
    out_dtype, compute = _compute_dtype(dy, w)
    in_spatial = tuple(input_shape[2:])
    stride, dilation, pads, _ = _geometry(in_spatial, w.shape[2:], stride, padding, dilation)
    dx = _grad_input(dy, w, in_spatial, stride, dilation, pads, groups, border, compute)
    return dx.astype(out_dtype, copy=False)


def conv_grad_weight(x, dy, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                     border="constant", cval=0.0):
    out_dtype, compute = _compute_dtype(x, dy)
    kernel = tuple(weight_shape[2:])
    stride, dilation, pads, out = _geometry(x.shape[2:], kernel, stride, padding, dilation)
    xp = _pad(x.astype(compute, copy=False), pads, border, cval)
    win = _windows(xp, kernel, stride, dilation, out)
    out_channels, cg = weight_shape[0], weight_shape[1]
    og = out_channels // groups
    dw = np.zeros((out_channels, cg * math.prod(kernel)), dtype=compute)
    dyc = dy.astype(compute, copy=False)
    per_position = cg * math.prod(kernel) * compute.itemsize
    for nsl, rsl in _chunks(x.shape[0], out, per_position):
        for g in range(groups):
            cols = _cols(win, nsl, rsl, slice(g * cg, (g + 1) * cg), kernel)   # (n, Cg*K, P)
            dyg = dyc[nsl, g * og:(g + 1) * og, rsl].reshape(cols.shape[0], og, -1)
            # sum over p: (Og, P) @ (P, Cg*K) per image (BLAS reads cols transposed), then n
            dw[g * og:(g + 1) * og] += np.matmul(dyg, cols.transpose(0, 2, 1)).sum(axis=0)
    return dw.reshape(tuple(weight_shape)).astype(out_dtype, copy=False)


def conv_grad_bias(dy):
    out_dtype, compute = _compute_dtype(dy)
    axes = (0,) + tuple(range(2, dy.ndim))
    return dy.astype(compute, copy=False).sum(axis=axes).astype(out_dtype, copy=False)


def conv_transpose(x, w, bias=None, *, stride=1, padding=0, output_padding=0, dilation=1,
                   groups=1):
    out_dtype, compute = _compute_dtype(x, w, bias)
    nsp = x.ndim - 2
    stride = positive_tuple(stride, nsp, "stride")
    dilation = positive_tuple(dilation, nsp, "dilation")
    padding = as_tuple(padding, nsp, "padding")
    output_padding = as_tuple(output_padding, nsp, "output_padding")
    kernel = w.shape[2:]
    out = tuple((i - 1) * s - 2 * p + d * (k - 1) + op + 1 for i, k, s, p, op, d
                in zip(x.shape[2:], kernel, stride, padding, output_padding, dilation))
    pads = tuple((p, p) for p in padding)
    # the conv from `out` with these pads has (out + 2p - d(k-1) - 1)//s + 1 outputs: x's
    # size, or more when output_padding >= stride; extend x by zeros to that size
    conv_out = conv_output_shape(out, kernel, pads, stride, dilation)
    extra = tuple(c - i for c, i in zip(conv_out, x.shape[2:]))
    dy = x
    if any(extra):
        dy = extend(x, ((0, 0), (0, 0)) + tuple((0, e) for e in extra), "constant")
    y = _grad_input(dy, w, out, stride, dilation, pads, groups, "constant", compute)
    if bias is not None:
        y += bias.astype(compute).reshape((1, -1) + (1,) * nsp)
    return y.astype(out_dtype, copy=False)
