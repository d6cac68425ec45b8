"""Result dtypes of the image form: integer images never wrap around.

>>> result_dtype("uint8", "uint8"), result_dtype("uint8", "float64")
(dtype('float32'), dtype('float64'))
>>> round_saturate(np.array([-3.5, 2.5, 3.5, 300.0]), "uint8")   # half to even, clipped
array([  0,   2,   4, 255], dtype=uint8)
"""
from __future__ import annotations

import numpy as np


def result_dtype(x_dtype, w_dtype=None) -> np.dtype:
    """The default (floating) result dtype for an image and a kernel.

    Both floating: numpy's promotion. An integer image or kernel promotes with float32,
    so uint8 in gives float32 out, never a wrapped uint8 (scipy wraps modulo 256).

    >>> result_dtype("float16", "float16"), result_dtype("float32", "float64")
    (dtype('float16'), dtype('float64'))
    """
    dtypes = [np.dtype(x_dtype)] + ([np.dtype(w_dtype)] if w_dtype is not None else [])
    floats = [d for d in dtypes if d.kind in "fc"]
    if len(floats) == len(dtypes):
        return np.result_type(*dtypes)
    return np.result_type(np.float32, *floats)


HALF_FLOATS = ("float16", "bfloat16")


def compute_dtype(dtype) -> np.dtype:
    """The dtype a fast implementation computes a floating result of ``dtype`` in: float32
    for the half floats (float16, and bfloat16 given by name: numpy has none), whose 11 or
    8 bits rounded after every product and sum would drift far past the direct bound; the
    dtype itself otherwise (float32, float64, complex). ``dtype``: anything np.dtype takes,
    or a dtype name.

    >>> compute_dtype("float16"), compute_dtype("bfloat16"), compute_dtype(np.float64)
    (dtype('float32'), dtype('float32'), dtype('float64'))
    >>> compute_dtype(result_dtype("uint8", "float16"))
    dtype('float32')
    """
    if isinstance(dtype, str):
        return np.dtype(np.float32) if dtype in HALF_FLOATS else np.dtype(dtype)
    dtype = np.dtype(dtype)
    # by type code ('e': float16), not .name: the name is computed anew on every read
    return np.dtype(np.float32) if dtype.char == "e" else dtype


def sum_dtype(x_dtype, w_dtype, cval=0.0, out_dtype=None) -> np.dtype:
    """The accumulator of a direct sum of the image form: int64 when image, kernel, cval
    and ``out_dtype`` are all integers (the sum must then be exact), else
    ``compute_dtype`` of the floating result.

    >>> sum_dtype(np.int32, np.int16, 0, "uint8"), sum_dtype(np.uint8, np.float32)
    (dtype('int64'), dtype('float32'))
    >>> sum_dtype(np.int32, np.int32, 0.5, "int32"), sum_dtype(np.float16, np.float16)
    (dtype('float32'), dtype('float32'))
    """
    x_dtype, w_dtype = np.dtype(x_dtype), np.dtype(w_dtype)
    if (x_dtype.kind in "iu" and w_dtype.kind in "iu" and float(cval).is_integer()
            and out_dtype is not None and np.dtype(out_dtype).kind in "iu"):
        return np.dtype(np.int64)
    return compute_dtype(result_dtype(x_dtype, w_dtype))


def image_compute_dtype(x_dtype, w_dtype) -> np.dtype:
    """The dtype the image form (correlate, convolve) computes in: ``compute_dtype`` of
    ``result_dtype``.

    >>> image_compute_dtype("float16", "float16"), image_compute_dtype("uint8", "float64")
    (dtype('float32'), dtype('float64'))
    """
    return compute_dtype(result_dtype(x_dtype, w_dtype))


def round_saturate(y, out_dtype):
    """Round half to even and saturate into an integer ``out_dtype`` (OpenCV's rule);
    a plain cast for a floating one. Exact integer sums (an integer or object array of
    Python ints) are only saturated: nothing to round, and no trip through float64.

    >>> round_saturate(np.array([2**53 + 1, -1], dtype=object), "int64")
    array([9007199254740993,               -1])
    >>> round_saturate(np.array([2**53 + 1, -1], dtype=object), "uint8")
    array([255,   0], dtype=uint8)
    """
    if out_dtype is None:
        return y
    out_dtype = np.dtype(out_dtype)
    y = np.asarray(y)
    if out_dtype.kind in "iu":
        info = np.iinfo(out_dtype)
        if y.dtype.kind in "iuO":
            return np.clip(y, info.min, info.max).astype(out_dtype)
        return np.clip(np.rint(y), info.min, info.max).astype(out_dtype)
    return y.astype(out_dtype)
