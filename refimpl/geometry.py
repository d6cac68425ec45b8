"""Shapes and padding of the convolution family, computed in exactly one place.

Oracles, candidates, the case catalogue, verification and result keys all ask here,
so an output shape is never derived twice. Pure Python: no array library.

Per-side padding is a tuple of ``(low, high)`` pairs, one per spatial axis.
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

IMAGE_PADDINGS = ("same", "valid", "full")


def as_tuple(value, n: int, name: str) -> tuple[int, ...]:
    """An int or a length-``n`` sequence of ints, as a tuple of ``n`` ints.

    >>> as_tuple(2, 3, "stride")
    (2, 2, 2)
    >>> as_tuple((1, 2), 2, "stride")
    (1, 2)
    """
    if is_int(value):
        return (int(value),) * n
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
    items = tuple(value)
    if not all(is_int(v) for v in items):   # 0.5 or True would be truncated silently
        raise TypeError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
    items = tuple(int(v) for v in items)
    if len(items) != n:
        raise ValueError(f"{name} must have {n} entries (one per spatial axis), got {value!r}")
    return items


def is_int(value) -> bool:
    """An integer that is not a bool (Python's or numpy's).

    >>> is_int(3), is_int(True), is_int(2.0)
    (True, False, False)
    """
    # plain ints first: an ABC isinstance check costs about 1 us, and every shape
    # argument of every call passes through here
    return type(value) is int or (isinstance(value, numbers.Integral)
                                  and type(value).__name__ not in ("bool", "bool_"))


def positive_tuple(value, n: int, name: str) -> tuple[int, ...]:
    items = as_tuple(value, n, name)
    if any(v < 1 for v in items):
        raise ValueError(f"{name} must be >= 1 on every axis, got {value!r}")
    return items


# ---------------------------------------------------------------------------------------
# Image form: correlate / convolve (scipy.ndimage and scipy.signal meanings)
# ---------------------------------------------------------------------------------------

def check_origin(kernel_shape: Sequence[int], origin) -> tuple[int, ...]:
    """scipy.ndimage's rule: -(k//2) <= origin <= (k-1)//2 on every axis."""
    origins = as_tuple(origin, len(kernel_shape), "origin")
    for k, o in zip(kernel_shape, origins):
        if not -(k // 2) <= o <= (k - 1) // 2:
            raise ValueError(
                f"origin {o} is outside [{-(k // 2)}, {(k - 1) // 2}] for a kernel axis of length {k}"
            )
    return origins


def image_padding(kernel_shape: Sequence[int], padding: str = "same", origin=0,
                  *, convolve: bool = False) -> tuple[tuple[int, int], ...]:
    """Per-side padding that turns the image form into a plain 'valid' correlation.

    ``correlate`` reads ``y[i] = sum_j w[j] * xp[i + j]`` with ``xp`` the input padded by
    the pairs returned here. ``convolve`` is the same with the kernel reversed on every
    axis; its anchor follows scipy.ndimage.convolve (an even kernel moves one sample).

    'same': the kernel anchor sits at ``k//2 + origin`` (scipy.ndimage).
    'valid' and 'full': scipy.signal's meanings (no origin).

    >>> image_padding((3,))
    ((1, 1),)
    >>> image_padding((4,))              # anchor at k//2 = 2: two samples before, one after
    ((2, 1),)
    >>> image_padding((4,), convolve=True)   # reversed kernel, anchor one sample earlier
    ((1, 2),)
    >>> image_padding((3, 2), "full")
    ((2, 2), (1, 1))
    """
    if padding not in IMAGE_PADDINGS:
        raise ValueError(f"padding must be one of {IMAGE_PADDINGS}, got {padding!r}")
    if padding != "same":
        if any(o != 0 for o in as_tuple(origin, len(kernel_shape), "origin")):
            raise ValueError("origin applies only to padding='same'")
        return tuple((0, 0) if padding == "valid" else (k - 1, k - 1) for k in kernel_shape)
    origins = check_origin(kernel_shape, origin)
    pads = []
    for k, o in zip(kernel_shape, origins):
        if convolve:
            o = -o - (1 if k % 2 == 0 else 0)
        low = k // 2 + o
        pads.append((low, k - 1 - low))
    return tuple(pads)


def image_output_shape(x_shape: Sequence[int], pads: Sequence[tuple[int, int]],
                       w_shape: Sequence[int]) -> tuple[int, ...]:
    """Output length per axis of the image form: the 'valid' correlation of the input
    padded by ``pads``, ``n + lo + hi - k + 1``.

    >>> image_output_shape((9, 8), image_padding((3, 4)), (3, 4))     # 'same'
    (9, 8)
    >>> image_output_shape((9,), image_padding((3,), "full"), (3,))
    (11,)
    >>> image_output_shape((9,), ((0, 0),), (3,))                     # 'valid'
    (7,)
    """
    return tuple(n + lo + hi - k + 1 for n, (lo, hi), k in zip(x_shape, pads, w_shape))


def convolve_as_correlate_origin(kernel_shape: Sequence[int], padding: str = "same", origin=0):
    """The origin that makes ``correlate(x, reversed w)`` equal ``convolve(x, w, origin)``.

    >>> convolve_as_correlate_origin((3, 4), "same", (1, 0))   # odd: negated; even: one more
    (-1, -1)
    """
    pads = image_padding(kernel_shape, padding, origin, convolve=True)
    if padding != "same":
        return (0,) * len(kernel_shape)
    return tuple(lo - k // 2 for (lo, _), k in zip(pads, kernel_shape))


# ---------------------------------------------------------------------------------------
# Layer form: conv (torch.nn.functional meanings, plus 'same' with stride as JAX/TF)
# ---------------------------------------------------------------------------------------

def layer_padding(in_spatial: Sequence[int], kernel_spatial: Sequence[int], padding,
                  stride=1, dilation=1) -> tuple[tuple[int, int], ...]:
    """Resolve ``padding`` of the layer form to per-side pairs.

    Accepts an int, a per-axis tuple of ints, per-side pairs ``((lo, hi), ...)``,
    ``"valid"``, or ``"same"``. 'same' gives output ``ceil(in / stride)`` with total
    padding ``max((out-1)*stride + (k-1)*dilation + 1 - in, 0)``, the odd extra on the
    high side (JAX/TF SAME; torch refuses stride > 1 here).

    >>> layer_padding((5,), (3,), 1)
    ((1, 1),)
    >>> layer_padding((6, 6), (3, 3), "same", stride=2)   # out 3: total 1, on the high side
    ((0, 1), (0, 1))
    >>> layer_padding((7,), (1,), ((2, 0),))
    ((2, 0),)
    """
    n = len(in_spatial)
    stride = positive_tuple(stride, n, "stride")
    dilation = positive_tuple(dilation, n, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding != "same":
            raise ValueError(
                f"padding must be an int, a tuple, per-side pairs, 'valid' or 'same'; got {padding!r}"
            )
        pads = []
        for size, k, s, d in zip(in_spatial, kernel_spatial, stride, dilation):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    if is_int(padding):
        pairs = ((padding, padding),) * n
    else:
        try:
            items = list(padding)
        except TypeError:
            raise TypeError(f"padding must be an int, a tuple, per-side pairs, 'valid' or 'same'; got {padding!r}") from None
        if len(items) != n:
            raise ValueError(f"padding must have {n} entries (one per spatial axis), got {padding!r}")
        flat = [v for p in items for v in (p if hasattr(p, "__len__") else (p,))]
        if not all(is_int(v) for v in flat):
            raise TypeError(f"padding must hold ints, got {padding!r}")
        pairs = tuple((int(p), int(p)) if not hasattr(p, "__len__") else tuple(int(v) for v in p)
                      for p in items)
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"per-side padding must be (low, high) pairs, got {padding!r}")
    if any(v < 0 for p in pairs for v in p):
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return tuple(pairs)


def conv_output_shape(in_spatial: Sequence[int], kernel_spatial: Sequence[int],
                      pads: Sequence[tuple[int, int]], stride=1, dilation=1) -> tuple[int, ...]:
    """``floor((in + lo + hi - dilation*(k-1) - 1) / stride) + 1`` per axis.

    >>> conv_output_shape((224,), (7,), ((3, 3),), stride=2)
    (112,)
    >>> conv_output_shape((5,), (3,), ((0, 0),))
    (3,)
    """
    n = len(in_spatial)
    stride = positive_tuple(stride, n, "stride")
    dilation = positive_tuple(dilation, n, "dilation")
    out = []
    for size, k, (lo, hi), s, d in zip(in_spatial, kernel_spatial, pads, stride, dilation):
        span = d * (k - 1) + 1
        padded = size + lo + hi
        if padded < span:
            raise ValueError(
                f"kernel extent {span} (dilation included) is larger than the padded input {padded}"
            )
        out.append((padded - span) // s + 1)
    return tuple(out)


def transpose_output_shape(in_spatial: Sequence[int], kernel_spatial: Sequence[int],
                           stride=1, padding=0, output_padding=0, dilation=1) -> tuple[int, ...]:
    """torch's conv_transpose: ``(in-1)*stride - 2*padding + dilation*(k-1) + output_padding + 1``.

    >>> transpose_output_shape((3,), (3,), stride=2, padding=1, output_padding=1)
    (6,)
    """
    n = len(in_spatial)
    stride = positive_tuple(stride, n, "stride")
    dilation = positive_tuple(dilation, n, "dilation")
    padding = as_tuple(padding, n, "padding")
    output_padding = as_tuple(output_padding, n, "output_padding")
    for op, s, d in zip(output_padding, stride, dilation):
        if not 0 <= op < max(s, d):
            raise ValueError(f"output_padding must be >= 0 and smaller than stride or dilation, got {output_padding}")
    if any(p < 0 for p in padding):
        raise ValueError(f"padding must be >= 0, got {padding}")
    out = tuple((i - 1) * s - 2 * p + d * (k - 1) + op + 1
                for i, k, s, p, op, d in zip(in_spatial, kernel_spatial, stride, padding, output_padding, dilation))
    if any(o < 1 for o in out):
        raise ValueError(f"conv_transpose output would be empty: {out}")
    return out


def pool_output_shape(in_spatial: Sequence[int], kernel_size, stride=None, padding=0,
                      dilation=1, ceil_mode: bool = False) -> tuple[int, ...]:
    """torch's pooling output size; with ceil_mode the last window must start inside
    the input or the left padding (a window starting in the right padding is dropped).

    >>> pool_output_shape((112,), 3, 2, 1)
    (56,)
    >>> pool_output_shape((5,), 2, 2, 0, ceil_mode=True)
    (3,)
    """
    n = len(in_spatial)
    kernel = positive_tuple(kernel_size, n, "kernel_size")
    stride = kernel if stride is None else positive_tuple(stride, n, "stride")
    padding = as_tuple(padding, n, "padding")
    dilation = positive_tuple(dilation, n, "dilation")
    out = []
    for size, k, s, p, d in zip(in_spatial, kernel, stride, padding, dilation):
        if not 0 <= p <= k // 2:
            raise ValueError(f"padding must be between 0 and kernel_size // 2 = {k // 2}, got {p}")
        span = d * (k - 1) + 1
        if size + 2 * p < span:
            raise ValueError(f"kernel_size: pooling window {span} (dilation included) is larger than the padded input {size + 2 * p}")
        num = size + 2 * p - span
        o = (math.ceil(num / s) if ceil_mode else num // s) + 1
        if ceil_mode and (o - 1) * s >= size + p:
            o -= 1
        out.append(o)
    return tuple(out)
