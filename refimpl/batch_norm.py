"""Batch normalisation oracles: ``batch_norm`` (training and eval) and its gradient
``batch_norm_grad``, torch.nn.functional.batch_norm's meanings written out.

x is (N, C, *spatial) with 0-3 spatial axes (BatchNorm1d's (N, C) and (N, C, L),
BatchNorm2d's (N, C, H, W), BatchNorm3d's (N, C, D, H, W)). Per channel c the
M = N * prod(spatial) values x[n, c, ...] are one batch. running_mean, running_var, weight
and bias are (C,) (the public function passes ones and zeros for a missing weight and
bias). Every result is float64.

Training (``training=True``), per channel::

    mean = (1/M) sum x                         var = (1/M) sum (x - mean)**2   (biased)
    y    = (x - mean) / sqrt(var + eps) * weight + bias
    new_running_mean = (1 - momentum) * running_mean + momentum * mean
    new_running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)
                                                                           (unbiased)

Eval (``training=False``): the running statistics normalise and come back unchanged::

    y = (x - running_mean) / sqrt(running_var + eps) * weight + bias

The functions are pure: they return (y, new_running_mean, new_running_var) and change
nothing (updating the caller's running statistics in place is convbench.batch_norm's job).

Gradient of sum(y * dy), with invstd = 1 / sqrt(var + eps) and xhat = (x - mean) * invstd
(training: the batch's mean and var; eval: the running ones)::

    dbias   = sum dy                      dweight = sum dy * xhat
    dx      = weight * invstd / M * (M * dy - dbias - xhat * dweight)      training
    dx      = dy * weight * invstd                                          eval

(in training the mean and the variance depend on x: the two subtracted terms).

>>> x = np.array([[1.], [2.], [3.], [4.], [5.]])        # N = 5, C = 1
>>> y, m, v = batch_norm(x, np.array([0.]), np.array([1.]), np.array([1.]), np.array([0.]),
...                      training=True, momentum=0.5, eps=2.0)
>>> y.ravel(), m, v        # mean 3, var 2 (unbiased 2.5): sqrt(2 + 2) = 2
(array([-1. , -0.5,  0. ,  0.5,  1. ]), array([1.5]), array([1.75]))
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["batch_norm", "batch_norm_grad", "batch_norm_at", "batch_norm_grad_at",
           "channel_statistics", "gradient_sums", "validate"]

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
_STATS = ("running_mean", "running_var", "weight", "bias")


# ---------------------------------------------------------------------------------------
# Validation (all of it runs before any work)
# ---------------------------------------------------------------------------------------

def _check_dtype(dtype, name: str) -> None:
    name_of = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    if name_of not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64 for batch_norm, "
                        f"got {name_of} (convert it first, e.g. {name}.astype(np.float32))")


def _check_real(value, name: str, positive: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        what = "positive and finite" if positive else "finite"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def validate(op: str, shapes, dtypes, training=False, momentum=0.1, eps=1e-5):
    """The output shapes of ``op`` ('batch_norm': y, new running mean, new running var;
    'batch_norm_grad': dx, dweight, dbias) for arrays of ``shapes`` and ``dtypes``
    (batch_norm: x, running_mean, running_var, weight, bias; batch_norm_grad: dy, x,
    running_mean, running_var, weight); ValueError/TypeError naming the argument."""
    if op not in ("batch_norm", "batch_norm_grad"):
        raise ValueError(f"unknown op {op!r}; accepted: batch_norm, batch_norm_grad")
    names = ("x",) + _STATS if op == "batch_norm" else ("dy", "x") + _STATS[:3]
    if len(shapes) != len(names):
        raise ValueError(f"{op} takes the arrays {names}, got {len(shapes)}")
    shapes = [tuple(int(n) for n in s) for s in shapes]
    for name, dtype in zip(names, dtypes):
        _check_dtype(dtype, name)
    x = shapes[names.index("x")]
    if not 2 <= len(x) <= 5:
        raise ValueError(f"x must have 2 to 5 axes (N, C, *spatial with 0-3 spatial axes), "
                         f"got shape {x}")
    if 0 in x:
        raise ValueError(f"x must not be empty, got shape {x}")
    if op == "batch_norm_grad" and shapes[0] != x:
        raise ValueError(f"dy must have x's shape {x}, got {shapes[0]}")
    for name, shape in zip(names, shapes):
        if name in _STATS and shape != (x[1],):
            raise ValueError(f"{name} must have shape ({x[1]},) (one value per channel of x "
                             f"{x}), got {shape}")
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be True or False, got {training!r}")
    if op == "batch_norm":
        _check_real(momentum, "momentum")
    _check_real(eps, "eps", positive=True)
    if training and math.prod(x) // x[1] == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got x of "
                         f"shape {x} (N * prod(spatial) = 1)")
    c = (x[1],)
    return (x, c, c)


def _values(a, name):
    a = np.asarray(a)
    _check_dtype(a.dtype, name)
    return a.astype(np.float64)


# ---------------------------------------------------------------------------------------
# Oracles
# ---------------------------------------------------------------------------------------

def channel_statistics(x) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the batch mean and the biased variance, from correctly rounded sums
    (math.fsum): mean = fsum(x) / M, var = fsum((x - mean)**2) / M."""
    x = _values(x, "x")
    mean, var = np.empty(x.shape[1]), np.empty(x.shape[1])
    m = x.size // x.shape[1]
    for c in range(x.shape[1]):
        values = np.moveaxis(x, 1, 0)[c].ravel()      # the channel's M values
        mean[c] = _sum(values) / m
        var[c] = _sum((values - mean[c]) ** 2) / m
    return mean, var


def _sum(values) -> float:
    """The correctly rounded sum of float64 ``values`` (math.fsum); with NaN or Inf among
    them, IEEE's (+Inf - Inf is NaN), which fsum refuses."""
    if not np.isfinite(values).all():
        return float(np.sum(values))
    return math.fsum(values.tolist())


def _normalising(x, running_mean, running_var, training, eps, statistics=None):
    """(mean, invstd) per channel: the batch's in training, the running ones in eval."""
    if training:
        mean, var = channel_statistics(x) if statistics is None else statistics
    else:
        mean, var = running_mean, running_var
    return mean, 1.0 / np.sqrt(var + eps)


def batch_norm(x, running_mean, running_var, weight, bias, training=False, momentum=0.1,
               eps=1e-5):
    """(y, new_running_mean, new_running_var): the module docstring's formulas.

    >>> x = np.array([[1.], [2.], [3.], [4.], [5.]])
    >>> y, m, v = batch_norm(x, np.array([1.]), np.array([2.]), np.array([2.]),
    ...                      np.array([1.]), eps=2.0)       # eval: (x - 1) / 2 * 2 + 1
    >>> y.ravel(), m, v
    (array([1., 2., 3., 4., 5.]), array([1.]), array([2.]))
    """
    validate("batch_norm", [np.shape(a) for a in (x, running_mean, running_var, weight, bias)],
             [np.asarray(a).dtype for a in (x, running_mean, running_var, weight, bias)],
             training, momentum, eps)
    x = _values(x, "x")
    rm, rv, w, b = (_values(a, n)
                    for a, n in zip((running_mean, running_var, weight, bias), _STATS))
    statistics = channel_statistics(x) if training else None
    mean, invstd = _normalising(x, rm, rv, training, eps, statistics)
    y = np.empty_like(x)
    for index in np.ndindex(*x.shape):
        c = index[1]
        y[index] = (x[index] - mean[c]) * invstd[c] * w[c] + b[c]
    if not training:
        return y, rm.copy(), rv.copy()
    m = x.size // x.shape[1]
    new_mean = (1 - momentum) * rm + momentum * statistics[0]
    new_var = (1 - momentum) * rv + momentum * statistics[1] * m / (m - 1)
    return y, new_mean, new_var


def batch_norm_at(x, running_mean, running_var, weight, bias, index, training=False,
                  momentum=0.1, eps=1e-5, statistics=None) -> float:
    """y at one index of x; ``statistics`` = channel_statistics(x) when already known."""
    x = np.asarray(x)
    c = index[1]
    mean, invstd = _normalising(x, np.asarray(running_mean, np.float64),
                                np.asarray(running_var, np.float64), training, eps, statistics)
    return float((float(x[tuple(index)]) - mean[c]) * invstd[c] * float(weight[c]) + float(bias[c]))


def gradient_sums(dy, x, mean, invstd) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, (sum dy, sum dy * xhat) with xhat = (x - mean) * invstd, correctly
    rounded sums (math.fsum)."""
    dy, x = _values(dy, "dy"), _values(x, "x")
    sum_dy, sum_dy_xhat = np.empty(x.shape[1]), np.empty(x.shape[1])
    for c in range(x.shape[1]):
        d, v = np.moveaxis(dy, 1, 0)[c].ravel(), np.moveaxis(x, 1, 0)[c].ravel()
        sum_dy[c] = _sum(d)
        sum_dy_xhat[c] = _sum(d * (v - mean[c]) * invstd[c])
    return sum_dy, sum_dy_xhat


def batch_norm_grad(dy, x, running_mean, running_var, weight, training=False, eps=1e-5):
    """(dx, dweight, dbias): the gradient of sum(batch_norm(x, ...)[0] * dy).

    >>> x = np.array([[1.], [2.], [3.], [4.], [5.]])        # mean 3, var 2, eps 2: invstd 1/2
    >>> dy = np.array([[1.], [0.], [0.], [0.], [0.]])       # xhat = -1 -1/2 0 1/2 1
    >>> dx, dw, db = batch_norm_grad(dy, x, np.array([0.]), np.array([1.]), np.array([1.]),
    ...                              training=True, eps=2.0)
    >>> dx.ravel(), dw, db    # 1/2 / 5 * (5 dy - 1 - xhat * (-1))
    (array([ 0.3 , -0.15, -0.1 , -0.05,  0.  ]), array([-1.]), array([1.]))
    """
    validate("batch_norm_grad", [np.shape(a) for a in (dy, x, running_mean, running_var, weight)],
             [np.asarray(a).dtype for a in (dy, x, running_mean, running_var, weight)],
             training, 0.0, eps)
    dy, x = _values(dy, "dy"), _values(x, "x")
    rm, rv, w = (_values(a, n) for a, n in zip((running_mean, running_var, weight), _STATS))
    mean, invstd = _normalising(x, rm, rv, training, eps)
    sum_dy, sum_dy_xhat = gradient_sums(dy, x, mean, invstd)
    m = x.size // x.shape[1]
    dx = np.empty_like(x)
    for index in np.ndindex(*x.shape):
        c = index[1]
        if training:
            xhat = (x[index] - mean[c]) * invstd[c]
            dx[index] = w[c] * invstd[c] / m * (m * dy[index] - sum_dy[c] - xhat * sum_dy_xhat[c])
        else:
            dx[index] = dy[index] * w[c] * invstd[c]
    return dx, sum_dy_xhat, sum_dy


def batch_norm_grad_at(dy, x, running_mean, running_var, weight, index, training=False,
                       eps=1e-5, statistics=None, sums=None) -> float:
    """dx at one index; ``statistics`` (mean, var) and ``sums`` (sum dy, sum dy * xhat)
    per channel when already known."""
    x, dy = np.asarray(x), np.asarray(dy)
    c, m = index[1], x.size // x.shape[1]
    mean, invstd = _normalising(x, np.asarray(running_mean, np.float64),
                                np.asarray(running_var, np.float64), training, eps, statistics)
    w, d = float(weight[c]), float(dy[tuple(index)])
    if not training:
        return d * w * invstd[c]
    sum_dy, sum_dy_xhat = gradient_sums(dy, x, mean, invstd) if sums is None else sums
    xhat = (float(x[tuple(index)]) - mean[c]) * invstd[c]
    return w * invstd[c] / m * (m * d - sum_dy[c] - xhat * sum_dy_xhat[c])
