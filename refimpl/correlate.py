"""Image-form oracles: ``correlate`` and ``convolve`` on N-D arrays (scipy.ndimage-like).

``correlate`` slides the kernel as it is; ``convolve`` slides it reversed on every axis.
Both pad by the border first, then take a 'valid' sliding sum over the padded image::

    x (n)  ->  xp = pad(x, (lo, hi), border)  ->  y[i] = sum_j w[j] * xp[i + j]
               |lo|  x  |hi|                      i in 0 .. n + lo + hi - k

where ``(lo, hi)`` come from ``refimpl.geometry.image_padding`` ('same': anchor at
``k//2 + origin``, exactly scipy.ndimage; 'valid' and 'full': scipy.signal's meanings).

Sums are exact for an integer image with an integer kernel (Python integers, any size,
when ``out_dtype`` is an integer type; a float64 result otherwise); other inputs are
accumulated in float64. ``out_dtype`` rounds half to even and saturates, as OpenCV does.
"""
from __future__ import annotations

import numpy as np

from refimpl.dtypes import round_saturate
from refimpl.geometry import image_output_shape, image_padding
from refimpl.pad import canonical_border, pad, source_index

SUPPORTED_DTYPES = ("uint8", "uint16", "uint32", "int8", "int16", "int32", "int64", "float16",
                    "float32", "float64",
                    "complex64", "complex128")


def validate(x_shape, w_shape, x_dtype, w_dtype, *, border="constant", cval=0.0,
             padding="same", origin=0, convolve=False):
    """Check the arguments of the image form before any work; return the canonical
    border and the per-side padding. Errors name the argument and what is accepted."""
    for name, shape, dtype in (("x", x_shape, x_dtype), ("w", w_shape, w_dtype)):
        if np.dtype(dtype).name not in SUPPORTED_DTYPES:
            raise TypeError(f"{name} has unsupported dtype {np.dtype(dtype)}; accepted: {', '.join(SUPPORTED_DTYPES)}")
        if len(shape) == 0:
            raise ValueError(f"{name} must have at least one axis")
        if 0 in shape:
            raise ValueError(f"{name} is empty (shape {tuple(shape)}); every axis needs at least one sample")
    if len(x_shape) != len(w_shape):
        raise ValueError(f"x and w must have the same rank, got x.ndim={len(x_shape)} and w.ndim={len(w_shape)}")
    border = canonical_border(border)
    if isinstance(cval, (complex, np.complexfloating)) or not np.isfinite(cval):
        raise ValueError(f"cval must be a finite real number, got {cval!r}")
    pads = image_padding(w_shape, padding, origin, convolve=convolve)
    for axis, (n, k, (lo, hi)) in enumerate(zip(x_shape, w_shape, pads)):
        if n + lo + hi < k:
            raise ValueError(f"kernel axis {axis} (length {k}) is larger than the image axis "
                             f"(length {n}) for padding={padding!r}")
    return border, pads


output_shape = image_output_shape   # the rule's one home is refimpl.geometry


def _check(x, w, border, cval, padding, origin, convolve):
    x, w = np.asarray(x), np.asarray(w)
    border, pads = validate(x.shape, w.shape, x.dtype, w.dtype, border=border, cval=cval,
                            padding=padding, origin=origin, convolve=convolve)
    return x, w, border, pads


def _wide(a):
    return a.astype(np.complex128 if np.iscomplexobj(a) else np.float64)


def _operands(x, w, cval, out_dtype):
    """The arrays summed: Python integers (exact) for integer x and w with an integral
    cval and an integer out_dtype, else float64 (complex128)."""
    exact = (x.dtype.kind in "iu" and w.dtype.kind in "iu" and float(cval).is_integer()
             and out_dtype is not None and np.dtype(out_dtype).kind in "iu")
    if exact:
        return x.astype(object), w.astype(object), int(cval)
    return _wide(x), _wide(w), cval


def correlate(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    """Correlation: ``y[i] = sum_j w[j] * xp[i + j]``, with ``xp`` = ``x`` padded by the border.

    Float64 result unless ``out_dtype`` is given (integers: round half to even, saturate).

    >>> import numpy as np
    >>> x = np.array([1., 2., 3., 4., 5.])
    >>> correlate(x, np.array([1., 0., -1.]))             # xp = 0 1 2 3 4 5 0
    array([-2., -2., -2., -2.,  4.])
    >>> correlate(x, np.array([1., 0., -1.]), border="edge")  # xp = 1 1 2 3 4 5 5
    array([-1., -2., -2., -2., -1.])
    >>> correlate(x, np.array([1., 2.]), padding="valid")
    array([ 5.,  8., 11., 14.])
    >>> correlate(np.array([2**53, 1, 1]), np.array([1, 1]), padding="valid", out_dtype="int64")
    array([9007199254740993,                2])
    """
    x, w, border, pads = _check(x, w, border, cval, padding, origin, convolve=False)
    x, w, cval = _operands(x, w, cval, out_dtype)
    return round_saturate(_sliding_sum(x, w, pads, border, cval), out_dtype)


def convolve(x, w, *, border="constant", cval=0.0, padding="same", origin=0, out_dtype=None):
    """Convolution: ``correlate`` with the kernel reversed on every axis.

    ``y[i] = sum_j w[k-1-j] * xp[i + j]``; 'same' puts the anchor where scipy.ndimage.convolve
    does, so an even kernel reads one sample further left than ``correlate(x, w[::-1])``.

    >>> import numpy as np
    >>> x = np.array([1., 2., 3., 4., 5.])
    >>> convolve(x, np.array([1., 0., -1.]))               # reversed: -1 0 1
    array([ 2.,  2.,  2.,  2., -4.])
    >>> convolve(x, np.array([1., 3.]), border="symmetric")  # 3*x[i] + x[i+1], x[5] -> x[4]
    array([ 5.,  9., 13., 17., 20.])
    >>> convolve(x, np.array([1., 2.]), padding="full")    # numpy.convolve's 'full'
    array([ 1.,  4.,  7., 10., 13., 10.])
    """
    x, w, border, pads = _check(x, w, border, cval, padding, origin, convolve=True)
    x, w, cval = _operands(x, w, cval, out_dtype)
    w = w[(slice(None, None, -1),) * w.ndim]
    return round_saturate(_sliding_sum(x, w, pads, border, cval), out_dtype)


def _sliding_sum(x, w, pads, border, cval):
    xp = pad(x, pads, border, cval)
    out_shape = output_shape(x.shape, pads, w.shape)
    y = np.zeros(out_shape, dtype=xp.dtype)
    for i in np.ndindex(*out_shape):
        total = 0
        for j in np.ndindex(*w.shape):
            total += w[j] * xp[tuple(a + b for a, b in zip(i, j))]
        y[i] = total
    return y


def correlate_at(x, w, index, *, border="constant", cval=0.0, padding="same", origin=0,
                 convolve=False, out_dtype=None):
    """Pointwise oracle: the exact float64 value of ``correlate(...)[index]`` (or of
    ``convolve(...)`` when ``convolve=True``) without building the whole output; a
    Python int (the exact sum, before ``out_dtype`` saturates it) where ``correlate``
    sums exactly.

    Reads ``x`` through ``source_index`` so no padded copy is made: it scales to images
    of any size.

    >>> import numpy as np
    >>> x = np.array([1., 2., 3., 4., 5.])
    >>> correlate_at(x, np.array([1., 0., -1.]), (4,), border="edge")
    -1.0
    >>> correlate_at(x, np.array([1., 3.]), (4,), border="symmetric", convolve=True)
    20.0
    """
    x, w, border, pads = _check(x, w, border, cval, padding, origin, convolve=convolve)
    x, w, cval = _operands(x, w, cval, out_dtype)
    if convolve:
        w = w[(slice(None, None, -1),) * w.ndim]
    total = 0
    for j in np.ndindex(*w.shape):
        src = [source_index(i + jj - lo, n, border) for i, jj, (lo, _), n in zip(index, j, pads, x.shape)]
        value = cval if any(s is None for s in src) else x[tuple(src)]
        total += w[j] * value
    return total.item() if hasattr(total, "item") else total
