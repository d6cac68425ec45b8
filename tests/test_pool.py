"""Pooling oracles: hand-derived goldens, agreement with torch (values, argmax indices,
autograd gradients), finite differences, the workload shapes, and every bad-input error."""
from __future__ import annotations

import doctest

import numpy as np
import pytest

import refimpl.pool
from refimpl.pool import (avg_pool, avg_pool_grad, lp_pool, lp_pool_grad, max_pool,
                          max_pool_grad, max_pool_indices)

torch = pytest.importorskip("torch")
F = torch.nn.functional

INF = float("inf")


def test_doctests():
    result = doctest.testmod(refimpl.pool)
    assert result.failed == 0 and result.attempted > 0


# ---------------------------------------------------------------------------------------
# Goldens derived by hand
# ---------------------------------------------------------------------------------------

def test_max_pool_2d_golden():
    x = np.arange(16.0).reshape(1, 1, 4, 4)      # rows 0..3, 4..7, 8..11, 12..15
    # 2x2 windows, stride 2: the bottom-right corner of each block
    np.testing.assert_array_equal(max_pool(x, 2), [[[[5, 7], [13, 15]]]])
    # 3x3, stride 2, padding 1: rows/cols of window o are 2o-1..2o+1 -> max at row, col
    # min(2o+1, 3): (1,1)=5, (1,3)=7, (3,1)=13, (3,3)=15
    np.testing.assert_array_equal(max_pool(x, 3, 2, 1), [[[[5, 7], [13, 15]]]])
    # kernel (1, 2), dilation (1, 2), stride 1: pairs (col j, col j+2), j = 0, 1
    np.testing.assert_array_equal(max_pool(x, (1, 2), 1, 0, (1, 2))[0, 0, :, :],
                                  [[2, 3], [6, 7], [10, 11], [14, 15]])
    # flat indices into the 4x4 plane
    np.testing.assert_array_equal(max_pool_indices(x, 2), [[[[5, 7], [13, 15]]]])


def test_max_pool_ties_golden():
    x = np.array([[[[1., 4., 4.],
                    [4., 2., 4.]]]])
    # one 2x3 window, scan row-major: (0,1)=4 is the first 4 -> flat index 1
    assert max_pool_indices(x, (2, 3)).item() == 1
    np.testing.assert_array_equal(max_pool_grad(np.array([[[[7.]]]]), x, (2, 3)),
                                  [[[[0, 7, 0], [0, 0, 0]]]])


def test_max_pool_grad_overlap_golden():
    x = np.array([[[1., 9., 2., 3., 0.]]])
    # kernel 3, stride 1: windows [1 9 2] [9 2 3] [2 3 0] -> argmax 1, 1, 3
    dx = max_pool_grad(np.array([[[1., 10., 100.]]]), x, 3, 1)
    np.testing.assert_array_equal(dx, [[[0, 11, 0, 100, 0]]])


def test_ceil_mode_drops_window_starting_in_right_padding():
    x = np.array([[[1., 2., 3., 4., 5.]]])
    # k=3, s=3, p=1, ceil_mode: ceil((5+2-3)/3)+1 = 3 windows, but the third would start at
    # 2*3-1 = 5, in the right padding ((3-1)*3 = 6 >= 5+1), so it is dropped: 2 windows
    # [-1 0 1] [2 3 4] -> (0+1+2)/3 = 1, (3+4+5)/3 = 4; max: 2, 5
    np.testing.assert_allclose(avg_pool(x, 3, 3, 1, ceil_mode=True), [[[1.0, 4.0]]])
    np.testing.assert_array_equal(max_pool(x, 3, 3, 1, ceil_mode=True), [[[2.0, 5.0]]])
    assert F.avg_pool1d(t(x), 3, 3, 1, ceil_mode=True).shape[-1] == 2


def test_avg_pool_ceil_and_pad_golden():
    x = np.array([[[1., 2., 3., 4., 5., 6.]]])
    # k=4, s=3, p=2, ceil: out = ceil((6+4-4)/3)+1 = 3; last start (3-1)*3 = 6 < 6+2 kept.
    # window positions: [-2..1] [1..4] [4..7]; padded input is -2..7
    #   input parts: {1,2} sum 3 | {2,3,4,5} sum 14 | {5,6} sum 11
    #   count_include_pad=True : divisors 4, 4, 4        -> 0.75, 3.5, 2.75
    #   count_include_pad=False: divisors 2, 4, 2        -> 1.5,  3.5, 5.5
    #   divisor_override=5                               -> 0.6,  2.8, 2.2
    np.testing.assert_allclose(avg_pool(x, 4, 3, 2, ceil_mode=True), [[[0.75, 3.5, 2.75]]])
    np.testing.assert_allclose(avg_pool(x, 4, 3, 2, ceil_mode=True, count_include_pad=False),
                               [[[1.5, 3.5, 5.5]]])
    np.testing.assert_allclose(avg_pool(x, 4, 3, 2, ceil_mode=True, divisor_override=5),
                               [[[0.6, 2.8, 2.2]]])
    # k=4, s=3, p=0, ceil: out = ceil(2/3)+1 = 2; windows [0..3] [3..6]: position 6 is
    # beyond the (unpadded) input, so even count_include_pad divides by 3: (4+5+6)/3 = 5
    np.testing.assert_allclose(avg_pool(x, 4, 3, 0, ceil_mode=True), [[[2.5, 5.0]]])
    # gradient of the first case: dy = 1 -> dx_i = sum over windows holding i of 1/4
    # position 1 is in windows 0 and 1, position 4 in windows 1 and 2
    np.testing.assert_allclose(avg_pool_grad(np.ones((1, 1, 3)), (1, 1, 6), 4, 3, 2, True),
                               [[[0.25, 0.5, 0.25, 0.25, 0.5, 0.25]]])


def test_avg_pool_2d_golden():
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)   # 1 2 3 / 4 5 6 / 7 8 9
    # k=2, s=1, p=1: 4x4 output; corner window holds only x[0,0]=1:
    #   count_include_pad -> 1/4, otherwise 1/1; centre windows hold 4 values
    y = avg_pool(x, 2, 1, 1)
    assert y.shape == (1, 1, 4, 4)
    assert y[0, 0, 0, 0] == 0.25 and y[0, 0, 1, 1] == (1 + 2 + 4 + 5) / 4
    assert avg_pool(x, 2, 1, 1, count_include_pad=False)[0, 0, 0, 0] == 1.0
    # edge window (row -1..0, cols 0..1) holds 1, 2: 3/4 vs 3/2
    assert y[0, 0, 0, 1] == 0.75
    assert avg_pool(x, 2, 1, 1, count_include_pad=False)[0, 0, 0, 1] == 1.5


def test_lp_pool_golden():
    x = np.array([[[3., 4., 1., 2., 2.]]])
    # p=2, k=2: sqrt(9+16) = 5, sqrt(1+4) = sqrt(5); the last 2 is left over
    np.testing.assert_allclose(lp_pool(x, 2, 2), [[[5.0, np.sqrt(5.0)]]])
    # ceil_mode: third window [2 .]: area 2, one element -> (2/1 * 4) ** 0.5 = sqrt(8)
    np.testing.assert_allclose(lp_pool(x, 2, 2, ceil_mode=True), [[[5.0, np.sqrt(5.0), np.sqrt(8.0)]]])
    # p=1 keeps signs: -3+4 = 1, -1+2 = 1
    np.testing.assert_allclose(lp_pool(np.array([[[-3., 4., -1., 2., 2.]]]), 1, 2), [[[1., 1.]]])
    # p=3 with a negative window sum: (-27 + 8) ** (1/3) is NaN (IEEE pow)
    assert np.isnan(lp_pool(np.array([[[-3., 2.]]]), 3, 2)).all()
    # gradient, p=2: y = sqrt(9+16) = 5, dy/dx = x / y = 0.6, 0.8
    np.testing.assert_allclose(lp_pool_grad(np.ones((1, 1, 1)), np.array([[[3., 4.]]]), 2, 2),
                               [[[0.6, 0.8]]])
    # a window of zeros passes no gradient (torch's relu mask), not inf or NaN
    np.testing.assert_array_equal(lp_pool_grad(np.ones((1, 1, 1)), np.zeros((1, 1, 2)), 2, 2),
                                  [[[0.0, 0.0]]])


# ---------------------------------------------------------------------------------------
# torch helpers
# ---------------------------------------------------------------------------------------

def t(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def tmax(x, nsp, k, s, p, d, ceil):
    return getattr(F, f"max_pool{nsp}d")(x, k, s, p, d, ceil_mode=ceil, return_indices=True)


def tavg(x, nsp, k, s, p, ceil, cip, div):
    if nsp == 1 and div is not None:  # avg_pool1d has no divisor_override: go through 2-D
        s = k if s is None else s
        y = F.avg_pool2d(x[:, :, None, :], (1, k[0]), (1, s[0]), (0, p[0]), ceil, cip, div)
        return y[:, :, 0, :]
    fn = getattr(F, f"avg_pool{nsp}d")
    if nsp == 1:
        return fn(x, k, s, p, ceil, cip)
    return fn(x, k, s, p, ceil, cip, div)


def tlp(x, nsp, p, k, s, ceil):
    fn = getattr(F, f"lp_pool{nsp}d")
    if nsp == 1:
        return fn(x, p, k[0], None if s is None else s[0], ceil)
    return fn(x, p, k, s, ceil)


def random_geometry(rng, nsp, *, padding=True, dilation=True):
    k = tuple(int(v) for v in rng.integers(1, 5, nsp))
    s = None if rng.random() < 0.25 else tuple(int(v) for v in rng.integers(1, 4, nsp))
    p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k) if padding else (0,) * nsp
    d = tuple(int(v) for v in rng.integers(1, 4, nsp)) if dilation else (1,) * nsp
    ceil = bool(rng.integers(2))
    max_extra = {1: 9, 2: 5, 3: 3}[nsp]
    size = tuple(max(1, dd * (kk - 1) + 1 - 2 * pp + int(rng.integers(0, max_extra)))
                 for kk, pp, dd in zip(k, p, d))
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    return (n, c) + size, k, s, p, d, ceil


def close(a, b, rtol=1e-12, atol=1e-12):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


CASES = [(nsp, seed) for nsp, count in ((1, 30), (2, 20), (3, 8)) for seed in range(count)]


# ---------------------------------------------------------------------------------------
# Agreement with torch on random parameter mixes
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("nsp,seed", CASES)
def test_max_pool_vs_torch(nsp, seed):
    rng = np.random.default_rng(1000 * nsp + seed)
    shape, k, s, p, d, ceil = random_geometry(rng, nsp)
    x = rng.standard_normal(shape)
    y = max_pool(x, k, s, p, d, ceil)
    idx = max_pool_indices(x, k, s, p, d, ceil)
    xt = t(x, grad=True)
    yt, it = tmax(xt, nsp, k, s, p, d, ceil)
    close(y, yt.detach().numpy(), rtol=0, atol=0)
    seen = idx >= 0   # windows that see only padding: torch's index is meaningless there
    np.testing.assert_array_equal(idx[seen], it.numpy()[seen])
    if seen.all():
        dy = rng.standard_normal(y.shape)
        yt.backward(t(dy))
        close(max_pool_grad(dy, x, k, s, p, d, ceil), xt.grad.numpy())


@pytest.mark.parametrize("nsp,seed", CASES)
def test_avg_pool_vs_torch(nsp, seed):
    rng = np.random.default_rng(2000 * nsp + seed)
    shape, k, s, p, _, ceil = random_geometry(rng, nsp, dilation=False)
    cip = bool(rng.integers(2))
    div = None if rng.random() < 0.6 else int(rng.choice([-3, 1, 2, 7]))
    if nsp == 3:
        # torch's avg_pool3d (only it) refuses an input axis shorter than the kernel even
        # where padding makes the window fit: widen those axes
        shape = shape[:2] + tuple(max(n, kk) for n, kk in zip(shape[2:], k))
    x = rng.standard_normal(shape)
    y = avg_pool(x, k, s, p, ceil, cip, div)
    xt = t(x, grad=True)
    yt = tavg(xt, nsp, k, s, p, ceil, cip, div)
    close(y, yt.detach().numpy())
    dy = rng.standard_normal(y.shape)
    yt.backward(t(dy))
    close(avg_pool_grad(dy, x.shape, k, s, p, ceil, cip, div), xt.grad.numpy())


@pytest.mark.parametrize("nsp,seed", CASES)
def test_lp_pool_vs_torch(nsp, seed):
    rng = np.random.default_rng(3000 * nsp + seed)
    shape, k, s, _, _, ceil = random_geometry(rng, nsp, padding=False, dilation=False)
    norm = [1, 2, 3, 1.5, 0.5, -1.0, INF, -INF][seed % 8]
    x = rng.uniform(0.2, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    if norm not in (1, 2, 3, INF, -INF):
        x = np.abs(x)  # negative bases to non-integer powers are NaN: tested elsewhere
    y = lp_pool(x, norm, k, s, ceil)
    xt = t(x, grad=True)
    yt = tlp(xt, nsp, norm, k, s, ceil)
    close(y, yt.detach().numpy(), rtol=1e-11)
    dy = rng.standard_normal(y.shape)   # NaN windows (p = 3, negative sums) included
    yt.backward(t(dy))
    close(lp_pool_grad(dy, x, norm, k, s, ceil), xt.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_lp_pool_nan_and_zero_windows_vs_torch():
    # negative sums to a non-integer root, zero windows, a NaN input: values and grads
    x = np.array([[[-3., 2., 0., 0., np.nan, 1., 2., -1., 5.]]])
    for norm in (1, 2, 3, INF, -INF):
        xt = t(x, grad=True)
        yt = F.lp_pool1d(xt, norm, 2, ceil_mode=True)
        close(lp_pool(x, norm, 2, ceil_mode=True), yt.detach().numpy())
        dy = np.arange(1.0, yt.shape[-1] + 1.0)[None, None]
        yt.backward(t(dy))
        close(lp_pool_grad(dy, x, norm, 2, ceil_mode=True), xt.grad.numpy())


# ---------------------------------------------------------------------------------------
# Ties, -inf and NaN: argmax indices and gradients against torch
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("nsp,seed", [(nsp, seed) for nsp in (1, 2, 3) for seed in range(6)])
def test_max_pool_ties_vs_torch(nsp, seed):
    rng = np.random.default_rng(4000 * nsp + seed)
    shape, k, s, p, d, ceil = random_geometry(rng, nsp)
    x = rng.integers(0, 3, shape).astype(np.float64)  # many equal values
    if seed % 3 == 1:
        x[rng.random(shape) < 0.3] = -np.inf
    if seed % 3 == 2:
        x[rng.random(shape) < 0.2] = np.nan
    idx = max_pool_indices(x, k, s, p, d, ceil)
    xt = t(x, grad=True)
    yt, it = tmax(xt, nsp, k, s, p, d, ceil)
    close(max_pool(x, k, s, p, d, ceil), yt.detach().numpy(), rtol=0, atol=0)
    seen = idx >= 0
    np.testing.assert_array_equal(idx[seen], it.numpy()[seen])
    if seen.all():
        dy = rng.integers(1, 50, yt.shape).astype(np.float64)
        yt.backward(t(dy))
        close(max_pool_grad(dy, x, k, s, p, d, ceil), xt.grad.numpy(), rtol=0, atol=0)


def test_max_pool_nan_picks_last_nan_like_torch():
    x = np.array([[[1., np.nan, 3., np.nan, 2.]]])
    assert max_pool_indices(x, 5).item() == 3
    assert F.max_pool1d(t(x), 5, return_indices=True)[1].item() == 3
    assert np.isnan(max_pool(x, 5)).all()


def test_max_pool_window_of_padding_only():
    # k=2, d=6, p=1 on length 5: the one window reads positions -1 and 5, both padding
    x = np.arange(1.0, 6.0).reshape(1, 1, 5)
    assert max_pool(x, 2, 1, 1, 6).item() == -np.inf
    assert F.max_pool1d(t(x), 2, 1, 1, 6).item() == -np.inf
    np.testing.assert_array_equal(max_pool_grad(np.ones((1, 1, 1)), x, 2, 1, 1, 6), 0 * x)


# ---------------------------------------------------------------------------------------
# Finite differences (avg and lp)
# ---------------------------------------------------------------------------------------

def finite_difference(f, x, dy, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (np.sum(f(x + e) * dy) - np.sum(f(x - e) * dy)) / (2 * h)
    return g


@pytest.mark.parametrize("shape,k,s,p,ceil,cip,div", [
    ((1, 2, 7), 3, 2, 1, True, True, None),
    ((1, 1, 5, 4), (3, 2), (2, 1), (1, 1), True, False, None),
    ((2, 1, 3, 3, 4), 2, (1, 2, 3), 1, False, True, 3),
])
def test_avg_pool_grad_finite_difference(shape, k, s, p, ceil, cip, div):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape)
    f = lambda a: avg_pool(a, k, s, p, ceil, cip, div)
    dy = rng.standard_normal(f(x).shape)
    close(avg_pool_grad(dy, shape, k, s, p, ceil, cip, div), finite_difference(f, x, dy),
          rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("shape,norm,k,s,ceil", [
    ((1, 2, 7), 2, 3, 2, True),
    ((1, 1, 5, 4), 3, (3, 2), (2, 1), True),
    ((1, 1, 5, 4), 1.5, 2, 1, False),
    ((1, 1, 3, 3, 4), 2.5, 2, (1, 2, 3), True),
])
def test_lp_pool_grad_finite_difference(shape, norm, k, s, ceil):
    rng = np.random.default_rng(8)
    x = rng.uniform(0.5, 2.0, shape)
    f = lambda a: lp_pool(a, norm, k, s, ceil)
    dy = rng.standard_normal(f(x).shape)
    close(lp_pool_grad(dy, x, norm, k, s, ceil), finite_difference(f, x, dy),
          rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------
# Workload shapes
# ---------------------------------------------------------------------------------------

def test_resnet_stem_max_pool():
    # ResNet stem: max pool 3x3, stride 2, padding 1 (112 -> 56), scaled down to 12 -> 6
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 4, 12, 12))
    y = max_pool(x, 3, 2, 1)
    assert y.shape == (1, 4, 6, 6)
    xt = t(x, grad=True)
    yt = F.max_pool2d(xt, 3, 2, 1)
    close(y, yt.detach().numpy(), rtol=0, atol=0)
    dy = rng.standard_normal(y.shape)
    yt.backward(t(dy))
    close(max_pool_grad(dy, x, 3, 2, 1), xt.grad.numpy())


def test_global_average_pool():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 4, 7, 7))
    y = avg_pool(x, (7, 7))
    assert y.shape == (2, 4, 1, 1)
    close(y[:, :, 0, 0], x.mean(axis=(2, 3)))
    close(y, F.adaptive_avg_pool2d(t(x), 1).numpy())
    dy = rng.standard_normal(y.shape)
    close(avg_pool_grad(dy, x.shape, 7), np.broadcast_to(dy / 49, x.shape))


# ---------------------------------------------------------------------------------------
# Bad input: the right error, naming the argument, before any work
# ---------------------------------------------------------------------------------------

X = np.zeros((1, 1, 5))
DY = np.zeros((1, 1, 2))

BAD = [
    (max_pool, (np.zeros((5, 5)), 2), {}, ValueError, "x"),
    (max_pool, (np.zeros((1, 1, 2, 2, 2, 2)), 2), {}, ValueError, "x"),
    (avg_pool, (np.zeros((1, 0, 5)), 2), {}, ValueError, "x"),
    (lp_pool, (np.zeros((1, 1, 5), complex), 2, 2), {}, TypeError, "x"),
    (max_pool, (np.array([[["a"]]]), 1), {}, TypeError, "x"),
    (max_pool, (X, 0), {}, ValueError, "kernel_size"),
    (max_pool, (X, (2, 2)), {}, ValueError, "kernel_size"),
    (max_pool, (X, 2.5), {}, TypeError, "kernel_size"),
    (max_pool, (X, True), {}, TypeError, "kernel_size"),
    (max_pool, (X, 6), {}, ValueError, "kernel_size"),
    (max_pool, (X, 2), {"dilation": 5}, ValueError, "kernel_size"),
    (avg_pool, (X, 2), {"stride": 0}, ValueError, "stride"),
    (max_pool, (X, 2), {"dilation": 0}, ValueError, "dilation"),
    (max_pool, (X, 3), {"padding": 2}, ValueError, "padding"),
    (max_pool, (X, 3), {"padding": -1}, ValueError, "padding"),
    (avg_pool, (X, 3), {"padding": (1, 1)}, ValueError, "padding"),
    (max_pool, (X, 2), {"ceil_mode": "yes"}, TypeError, "ceil_mode"),
    (avg_pool, (X, 2), {"count_include_pad": 1}, TypeError, "count_include_pad"),
    (avg_pool, (X, 2), {"divisor_override": 0}, ValueError, "divisor_override"),
    (avg_pool, (X, 2), {"divisor_override": 1.5}, TypeError, "divisor_override"),
    (lp_pool, (X, 0, 2), {}, ValueError, "norm_type"),
    (lp_pool, (X, float("nan"), 2), {}, ValueError, "norm_type"),
    (lp_pool, (X, "2", 2), {}, TypeError, "norm_type"),
    (lp_pool, (X, True, 2), {}, TypeError, "norm_type"),
    (lp_pool, (X, 2, 6), {}, ValueError, "kernel_size"),
    (max_pool_grad, (np.zeros((1, 1, 3)), X, 2), {}, ValueError, "dy"),
    (max_pool_grad, (np.zeros((1, 1, 2), complex), X, 2), {}, TypeError, "dy"),
    (avg_pool_grad, (DY, (5,), 2), {}, ValueError, "input_shape"),
    (avg_pool_grad, (DY, (1, 0, 5), 2), {}, ValueError, "input_shape"),
    (avg_pool_grad, (DY, 5, 2), {}, TypeError, "input_shape"),
    (avg_pool_grad, (DY, (1, 1, 5.0), 2), {}, TypeError, "input_shape"),
    (avg_pool_grad, (DY, (1, 1, 5), 2), {"divisor_override": 0}, ValueError, "divisor_override"),
    (avg_pool_grad, (np.zeros((1, 1, 3)), (1, 1, 5), 2), {}, ValueError, "dy"),
    (lp_pool_grad, (DY, X, 0, 2), {}, ValueError, "norm_type"),
    (lp_pool_grad, (np.zeros((1, 1, 1)), X, 2, 2), {}, ValueError, "dy"),
]


@pytest.mark.parametrize("fn,args,kwargs,error,name", BAD,
                         ids=[f"{b[0].__name__}-{b[4]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input(fn, args, kwargs, error, name):
    with pytest.raises(error, match=name):
        fn(*args, **kwargs)


# =======================================================================================
# The harness: op table, cases, candidates, verification, planted bugs, public API
# =======================================================================================


import convbench  # noqa: E402
from convbench import registry, verification  # noqa: E402
from convbench.cases import suite  # noqa: E402
from convbench.spec import Spec  # noqa: E402
from convbench.tolerance import gamma  # noqa: E402
from candidates.pool import strided_numpy  # noqa: E402

POOL_OPS = ("max_pool", "avg_pool", "lp_pool", "max_pool_grad", "avg_pool_grad", "lp_pool_grad")


def CPU(op):
    """The CPU candidates of op (GPU ones are tested in tests/test_conv_gpu.py's way)."""
    return [c for c in registry.candidates(op) if c.device == "cpu"]


def _verification_uses_error_scale() -> bool:
    case = next(c for c in suite("small", "max_pool_grad") if c.id.endswith("f32-ties"))
    shipped = verification.reference(case).absref
    return np.array_equal(shipped, case.spec.operation.error_scale(case.spec, case.arrays()))


@pytest.fixture
def one_thread():
    """Candidates on one thread: these inputs are tiny, and an OpenMP region on a busy
    2-core machine waits milliseconds per call for its second thread."""
    from convbench.thread_settings import threads

    with threads(1):
        yield


def test_verification_uses_error_scale():
    assert _verification_uses_error_scale()


# ---------------------------------------------------------------------------------------
# Op table and cases
# ---------------------------------------------------------------------------------------

def test_ties_recipe():
    case = next(c for c in suite("small", "max_pool") if "ties" in c.id)
    x = case.arrays()[0]
    assert set(np.unique(x)) <= {-4.0, -3.0, -2.0, -1.0}
    assert len(np.unique(x)) == 4   # few values: ties in almost every window


@pytest.mark.parametrize("op", POOL_OPS)
def test_small_suite_shapes_and_pointwise_oracle(op):
    """Output shapes, dtypes and every border zone agree with the oracle; oracle_at agrees
    with the whole oracle at the zone corners and a few more points."""
    cases = suite("small", op)
    assert len(cases) >= 15
    for case in cases:
        spec = case.spec
        arrays = case.arrays()
        y = spec.operation.oracle(spec, arrays)
        assert y.shape == spec.output_shape(), case.id
        assert spec.operation.result_dtype(spec) == np.dtype(spec.dtypes[0])
        zones = spec.operation.border_zones(spec)
        assert len(zones) == len(y.shape) and zones[:2] == ((0, 0), (0, 0))
        points = verification.sample_points(case)
        for index in list(zip(*points))[::4]:
            got = spec.operation.oracle_at(spec, arrays, index)
            np.testing.assert_allclose(got, y[index], rtol=1e-12, atol=1e-12, equal_nan=True,
                                       err_msg=f"{case.id} at {index}")


@pytest.mark.parametrize("op", ("max_pool", "avg_pool", "lp_pool"))
def test_forward_border_zones_are_exactly_the_windows_reading_outside(op):
    for case in suite("small", op):
        spec = case.spec
        in_shape, out_shape, kernel, stride, padding, dilation = spec.operation.geometry(spec)
        zones = spec.operation.border_zones(spec)
        for n, o, k, s, p, d, (lo, hi) in zip(in_shape[2:], out_shape[2:], kernel, stride,
                                              padding, dilation, zones[2:]):
            low = sum(1 for oa in range(o) if oa * s - p < 0)
            high = sum(1 for oa in range(o) if oa * s - p + (k - 1) * d >= n)
            assert (lo, hi) == (low, high), case.id


def test_spec_normalises_and_ids():
    spec = Spec.make("max_pool", [(1, 64, 112, 112)], ["float32"], kernel_size=np.int64(3),
                     stride=[2, 2], padding=1)
    assert spec.kwargs["kernel_size"] == 3 and spec.kwargs["stride"] == (2, 2)
    assert spec.output_shape() == (1, 64, 56, 56)
    hash(spec)
    lp = Spec.make("lp_pool", [(1, 2, 8, 8)], ["float64"], norm_type=2.0, kernel_size=2)
    assert lp.kwargs["norm_type"] == 2 and "norm_type=2-" in lp.id
    assert Spec.make("lp_pool", [(1, 2, 8, 8)], ["float64"], norm_type=INF, kernel_size=2).kwargs[
        "norm_type"] == INF


def test_quick_and_layer_suites():
    (quick,) = suite("quick", "max_pool")
    assert quick.name == "resnet-stem-maxpool" and quick.spec.output_shape() == (1, 64, 56, 56)
    names = {(c.spec.op, c.name) for c in suite("layers")
             if c.spec.op in POOL_OPS}
    for op in ("max_pool", "max_pool_grad"):
        for name in ("resnet-stem-maxpool", "vgg-maxpool-224", "vgg-maxpool-14"):
            assert (op, name) in names
    for op in ("avg_pool", "avg_pool_grad"):
        assert (op, "global-avgpool") in names
    vgg = next(c for c in suite("layers", "max_pool") if c.name == "vgg-maxpool-14")
    assert vgg.spec.shapes == ((1, 512, 14, 14),) and vgg.spec.output_shape() == (1, 512, 7, 7)


def test_terms():
    def terms(op, shapes, dtype="float32", **kw):
        spec = Spec.make(op, shapes, [dtype] * len(shapes), **kw)
        return spec.operation.terms(spec)
    assert terms("avg_pool", [(1, 1, 9, 9)], kernel_size=3) == 10
    # 3x3 stride 2: at most 2 windows per axis read one position -> 4
    assert terms("max_pool_grad", [(1, 1, 4, 4), (1, 1, 9, 9)], kernel_size=3, stride=2) == 4
    assert terms("avg_pool_grad", [(1, 1, 7, 7)], input_shape=(1, 1, 9, 9), kernel_size=3,
                 stride=1) == 10
    # dilation 2, stride 2: offsets j*d = 0, 2, 4 all share one phase -> 3 windows per axis
    assert terms("max_pool_grad", [(1, 1, 3), (1, 1, 9)], kernel_size=3, stride=2,
                 dilation=2) == 3
    # lp p = 2: 9 + 4 sum terms, sqrt (q = 1/2 exact), +2 for the root's rounding
    assert terms("lp_pool", [(1, 1, 9, 9)], norm_type=2, kernel_size=3) == 15
    # p = 3: 1/3 is not a float32: + ceil(103.3 / 3) for the rounded exponent
    assert terms("lp_pool", [(1, 1, 9, 9)], norm_type=3, kernel_size=3) == 15 + 35


# ---------------------------------------------------------------------------------------
# The error scale (absref) of each op
# ---------------------------------------------------------------------------------------

def test_max_pool_grad_error_scale_routes_by_signed_x():
    # x = [-1, -5, -5], k=3, s=1, p=1: windows [. -1 -5] [-1 -5 -5] [-5 -5 .]
    # argmax (signed): 0, 0, 1  -> element 0 receives dy0 + dy1 (a rounded float32 sum)
    # argmax of |x|:   1, 1, 1  -> the generic scale op(|dy|, |x|) is 0 at element 0
    x = np.array([[[-1.0, -5.0, -5.0]]], dtype=np.float32)
    dy = np.array([[[1.0, 2.0 ** -30, 1.0]]], dtype=np.float32)
    spec = Spec.make("max_pool_grad", [dy.shape, x.shape], ["float32"] * 2, kernel_size=3,
                     stride=1, padding=1)
    op = spec.operation
    generic = op.oracle(spec, (np.abs(dy), np.abs(x)))
    scale = op.error_scale(spec, (dy, x))
    np.testing.assert_array_equal(scale, max_pool_grad(np.abs(dy), x, 3, 1, 1))
    assert generic[0, 0, 0] == 0 and scale[0, 0, 0] == 1 + 2.0 ** -30
    ref = op.oracle(spec, (dy, x))
    got = strided_numpy.max_pool_grad(dy, x, 3, 1, 1).astype(np.float64)
    err = np.abs(got - ref)[0, 0, 0]
    assert err == 2.0 ** -30                      # the float32 sum 1 + 2**-30 rounds to 1
    g = gamma(op.terms(spec), 2.0 ** -24)
    assert err > g * generic[0, 0, 0] and err <= g * scale[0, 0, 0]


def test_avg_error_scale_with_negative_divisor():
    spec = Spec.make("avg_pool", [(1, 1, 4)], ["float64"], kernel_size=2, divisor_override=-2)
    x = np.array([[[1.0, -3.0, 2.0, 2.0]]])
    np.testing.assert_array_equal(spec.operation.error_scale(spec, (x,)), [[[2.0, 2.0]]])


def test_lp_error_scale_when_the_power_sum_cancels():
    # p = 3 on [-a, b] with b a few float32 ulps above a: the cubes nearly cancel, float32
    # rounding of each cube is comparable to their difference, and the cube root amplifies
    # it. The generic scale lp_pool(|x|) is no bound there; error_scale is.
    a = np.float32(1.2345678)
    b = np.nextafter(np.nextafter(a, np.float32(2)), np.float32(2))
    x = np.array([[[-a, b]]], dtype=np.float32)
    spec = Spec.make("lp_pool", [x.shape], ["float32"], norm_type=3, kernel_size=2)
    op = spec.operation
    ref = op.oracle(spec, (x,))
    got = strided_numpy.lp_pool(x, 3, 2).astype(np.float64)
    g = gamma(op.terms(spec), 2.0 ** -24)
    err = np.abs(got - ref)
    assert (err > g * lp_pool(np.abs(x), 3, 2)).all()
    assert (err <= g * op.error_scale(spec, (x,))).all()
    # no cancellation (p even, or x >= 0): the generic scale is used as is
    even = Spec.make("lp_pool", [x.shape], ["float32"], norm_type=2, kernel_size=2)
    np.testing.assert_array_equal(even.operation.error_scale(even, (x,)), lp_pool(np.abs(x), 2, 2))
    # gradient: a window whose sum is within its rounding of 0 has no bound at all
    spec = Spec.make("lp_pool_grad", [(1, 1, 1), x.shape], ["float64"] * 2, norm_type=3,
                     kernel_size=2)
    tie = np.array([[[-1.0, 1.0]]])
    assert np.isinf(spec.operation.error_scale(spec, (np.ones((1, 1, 1)), tie))).all()


# ---------------------------------------------------------------------------------------
# Candidates on the small cases, under the error bound
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", POOL_OPS)
def test_pool_candidates_pass_small_cases(op, one_thread):
    cases = suite("small", op)
    report = verification.verify_candidates(CPU(op), cases)
    assert report.passed, str(report)
    names = {r.candidate for r in report.rows}
    assert names == {"strided_numpy", "pool_torch"}
    # strided_numpy computes every case; pool_torch refuses only torch's documented quirks
    for row in report.rows:
        if row.status != "pass":
            assert row.candidate == "pool_torch" and row.status == "unsupported", row
            assert "avg_pool3d refuses" in row.detail or "only padding" in row.detail
    max_error_model = {"max_pool": "exact"}.get(op)
    if max_error_model:
        assert {r.error_model for r in report.rows if r.status == "pass"} == {"exact"}


def test_pool_torch_refusals_are_real_torch_differences():
    # max_pool_grad: k=2, d=6, p=1 on length 5 reads positions -1 and 5 only
    # torch's index is 5, past the plane: its backward would write out of bounds (running
    # it corrupted memory and aborted the process here); the oracle has no element: -1
    x = np.arange(1.0, 6.0).reshape(1, 1, 5)
    assert F.max_pool1d(t(x), 2, 1, 1, 6, return_indices=True)[1].item() == 5
    assert max_pool_indices(x, 2, 1, 1, 6).item() == -1
    assert max_pool_grad(np.ones((1, 1, 1)), x, 2, 1, 1, 6).sum() == 0
    spec = Spec.make("max_pool_grad", [(1, 1, 1), (1, 1, 5)], ["float64"] * 2, kernel_size=2,
                     stride=1, padding=1, dilation=6)
    assert registry.get("max_pool_grad", "pool_torch").supports(spec)
    # avg_pool3d: an axis of 2 with kernel 3 and padding 1 fits (2 + 2 >= 3), torch refuses
    x3 = np.zeros((1, 1, 2, 4, 4))
    with pytest.raises(RuntimeError):
        F.avg_pool3d(t(x3), 3, 1, 1)
    assert avg_pool(x3, 3, 1, 1).shape == (1, 1, 2, 4, 4)
    spec = Spec.make("avg_pool", [x3.shape], ["float64"], kernel_size=3, stride=1, padding=1)
    assert registry.get("avg_pool", "pool_torch").supports(spec)
    assert registry.get("avg_pool", "strided_numpy").supports(spec) is None


def test_quick_case_sampled_points(one_thread):
    """The stem pool is checked at sampled points (every border zone): both candidates."""
    (case,) = suite("quick", "max_pool")
    report = verification.verify_candidates(CPU("max_pool"), [case])
    assert report.passed, str(report)
    assert all(r.checked.endswith("points") for r in report.rows)


# ---------------------------------------------------------------------------------------
# Planted bugs: convbench.verify rejects each one, on the cases that expose it
# ---------------------------------------------------------------------------------------

def _max_pool_last_tie_grad(dy, x, kernel_size, stride=None, padding=0, dilation=1,
                            ceil_mode=False):
    """Ties go to the LAST maximum: a ramp of 1e-9 per flat position makes later equal
    elements win (x is integer-valued where it matters)."""
    ramp = 1e-9 * np.arange(np.prod(x.shape[2:])).reshape(x.shape[2:])
    dx = strided_numpy.max_pool_grad(dy.astype(np.float64), x.astype(np.float64) + ramp,
                                     kernel_size, stride, padding, dilation, ceil_mode)
    return dx.astype(np.result_type(dy, x))


def _max_pool_ceil_dropped(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Computes floor-mode windows; the extra ceil_mode window is left at 0."""
    y = strided_numpy.max_pool(x, kernel_size, stride, padding, dilation, False)
    if ceil_mode:
        full = refimpl.pool.validate("max_pool", [x.shape], [x.dtype], kernel_size=kernel_size,
                                     stride=stride, padding=padding, dilation=dilation,
                                     ceil_mode=True)
        y = np.pad(y, [(0, f - n) for f, n in zip(full, y.shape)])
    return y


def _avg_pool_ignores_count_include_pad(x, kernel_size, stride=None, padding=0,
                                        ceil_mode=False, count_include_pad=True,
                                        divisor_override=None):
    return strided_numpy.avg_pool(x, kernel_size, stride, padding, ceil_mode, True,
                                  divisor_override)


def _max_pool_zero_padding(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    pads = [(p, p) for p in refimpl.geometry.as_tuple(padding, x.ndim - 2, "padding")]
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)   # zeros: beats every negative input
    return strided_numpy.max_pool(xp, kernel_size, stride, 0, dilation, ceil_mode)


def _max_pool_stride_one(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Windows start at o instead of o*stride; the output shape is still right."""
    y = strided_numpy.max_pool(x, kernel_size, 1, padding, dilation, ceil_mode)
    shape = refimpl.pool.validate("max_pool", [x.shape], [x.dtype], kernel_size=kernel_size,
                                  stride=stride, padding=padding, dilation=dilation,
                                  ceil_mode=ceil_mode)
    return y[tuple(slice(0, n) for n in shape)]


def _max_pool_ignores_nan(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    return strided_numpy.max_pool(np.where(np.isnan(x), -np.inf, x), kernel_size, stride,
                                  padding, dilation, ceil_mode)


PLANTED = [
    ("max_pool_grad", _max_pool_last_tie_grad, lambda c: "ties" in c),
    ("max_pool", _max_pool_ceil_dropped, lambda c: "ceil_mode=True" in c),
    ("avg_pool", _avg_pool_ignores_count_include_pad, lambda c: "count_include_pad=False" in c),
    ("max_pool", _max_pool_zero_padding, lambda c: "padding=" in c),
    ("max_pool", _max_pool_stride_one, lambda c: True),
    ("max_pool", _max_pool_ignores_nan, lambda c: "nonfinite" in c),
]


@pytest.mark.parametrize("op,fn,exposes", PLANTED, ids=[p[1].__name__ for p in PLANTED])
def test_planted_bug_rejected(op, fn, exposes, one_thread):
    report = convbench.verify(op, fn, error="exact" if op == "max_pool" else "direct")
    assert not report.passed
    failed = [r for r in report.rows if r.status != "pass"]
    assert failed and all(r.status == "FAIL" for r in failed), str(report)
    assert all(exposes(r.case) for r in failed), str(report)   # the bug, not the harness
    if fn is _max_pool_zero_padding:   # all-negative input next to the padding
        assert any("ties" in r.case for r in failed)


def test_correct_torch_user_function_passes(one_thread):
    def my_max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[x.ndim - 3]
        return fn(torch.from_numpy(x), kernel_size, stride, padding, dilation, ceil_mode=ceil_mode)

    report = convbench.verify("max_pool", my_max_pool, error="exact")
    assert report.passed, str(report)
    assert report.counts()["pass"] == len(suite("small", "max_pool"))


# ---------------------------------------------------------------------------------------
# Public API: results, and bad input refused before any work
# ---------------------------------------------------------------------------------------

def test_api_round_trip():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 3, 12, 11)).astype(np.float32)
    y = convbench.max_pool(x, 3, 2, 1)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    np.testing.assert_array_equal(y, max_pool(x, 3, 2, 1))
    yt = convbench.avg_pool(torch.from_numpy(x), 2, ceil_mode=True, algorithm="strided_numpy")
    assert isinstance(yt, torch.Tensor)
    np.testing.assert_allclose(yt.numpy(), avg_pool(x, 2, ceil_mode=True), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(convbench.lp_pool(np.abs(x), 2, 3), lp_pool(np.abs(x), 2, 3),
                               rtol=1e-5)


API_BAD = [
    (convbench.max_pool, (np.zeros((1, 1, 4, 4), np.float32), 7), {}, ValueError, "kernel_size"),
    (convbench.max_pool, (np.zeros((1, 1, 4, 4), np.float32), 3), {"padding": 1, "dilation": 3},
     ValueError, "kernel_size"),
    (convbench.avg_pool, (np.zeros((1, 1, 9), np.float32), 3), {"stride": 0}, ValueError, "stride"),
    (convbench.max_pool, (np.zeros((1, 1, 9), np.float32), 3), {"padding": 2}, ValueError,
     "padding"),
    (convbench.max_pool, (np.zeros((1, 1, 9), np.uint8), 3), {}, TypeError, "x"),
    (convbench.lp_pool, (np.zeros((1, 1, 9), np.int32), 2, 3), {}, TypeError, "x"),
    (convbench.max_pool, (np.zeros((9, 9), np.float32), 3), {}, ValueError, "x"),
    (convbench.avg_pool, (np.zeros((1, 1, 9), np.float32), 2), {"divisor_override": 0},
     ValueError, "divisor_override"),
    (convbench.lp_pool, (np.zeros((1, 1, 9), np.float32), 0, 3), {}, ValueError, "norm_type"),
    (convbench.max_pool, (np.zeros((1, 1, 9), np.float32), 3), {"ceil_mode": 1}, TypeError,
     "ceil_mode"),
]


@pytest.mark.parametrize("fn,args,kwargs,error,name", API_BAD,
                         ids=[f"{b[0].__name__}-{b[4]}-{i}" for i, b in enumerate(API_BAD)])
def test_api_bad_input_before_any_work(fn, args, kwargs, error, name, no_work):
    with pytest.raises(error, match=name):
        fn(*args, **kwargs)


def test_spec_refuses_bad_gradients_and_missing_arguments():
    with pytest.raises(ValueError, match="dy"):
        Spec.make("max_pool_grad", [(1, 1, 3), (1, 1, 9)], ["float32"] * 2, kernel_size=2)
    with pytest.raises(TypeError, match="dy"):
        Spec.make("max_pool_grad", [(1, 1, 4), (1, 1, 9)], ["int16", "float32"], kernel_size=2)
    with pytest.raises(TypeError, match="input_shape"):
        Spec.make("avg_pool_grad", [(1, 1, 4)], ["float32"], kernel_size=2)
    with pytest.raises(TypeError, match="norm_type"):
        Spec.make("lp_pool", [(1, 1, 9)], ["float32"], kernel_size=2)
    with pytest.raises(TypeError, match="dilation"):
        Spec.make("avg_pool", [(1, 1, 9)], ["float32"], kernel_size=2, dilation=2)
    with pytest.raises(TypeError, match="kernel_size"):
        Spec.make("max_pool", [(1, 1, 9)], ["float32"], kernel_size=(2.5,))


# ---------------------------------------------------------------------------------------
# pool_torch's lp_pool_grad is a closed form: it runs where autograd is off (under
# torch.inference_mode, inside a torch custom operator's backward)
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, INF, -INF])
@pytest.mark.parametrize("shape, kernel, stride, ceil_mode", [
    ((2, 3, 11), 3, 2, True), ((2, 2, 9, 7), (2, 3), None, True), ((1, 2, 5, 4, 6), 2, 1, False)])
def test_pool_torch_lp_pool_grad_under_inference_mode(p, shape, kernel, stride, ceil_mode):
    from candidates.pool import pool_torch

    rng = np.random.default_rng(31)
    x = rng.standard_normal(shape)
    x.flat[0] = 0.0                      # a zero: x ** (p - 1) and sgn(x) at 0
    dy = rng.standard_normal(lp_pool(x, p, kernel, stride, ceil_mode).shape)
    with torch.inference_mode():
        got = pool_torch.lp_pool_grad(torch.from_numpy(dy), torch.from_numpy(x), p, kernel,
                                      stride, ceil_mode)
    np.testing.assert_allclose(got.numpy(), lp_pool_grad(dy, x, p, kernel, stride, ceil_mode),
                               rtol=1e-12, atol=1e-12)


def test_lp_pool_backward_through_the_operator_on_bfloat16():
    # numpy has no bfloat16: the default lp_pool_grad of bfloat16 CPU tensors is pool_torch,
    # called inside convbench::lp_pool's backward, where autograd is off
    import convbench
    from convbench import torch_ops

    x = torch.from_numpy(np.random.default_rng(32).standard_normal((2, 3, 8, 6)))
    xb = x.to(torch.bfloat16).requires_grad_(True)
    dy = torch.ones(2, 3, 4, 3, dtype=torch.bfloat16)
    assert "runs: pool_torch" in convbench.plan("lp_pool_grad", dy, xb.detach(), norm_type=2.0,
                                                kernel_size=2).explain()
    torch_ops.lp_pool(xb, 2.0, 2).backward(dy)
    # torch's own autograd on the same (bfloat16-rounded) values, in float64
    xr = xb.detach().double().requires_grad_(True)
    F.lp_pool2d(xr, 2.0, 2).backward(dy.double())
    assert xb.grad.dtype == torch.bfloat16
    np.testing.assert_allclose(xb.grad.double().numpy(), xr.grad.numpy(), rtol=2e-2, atol=2e-2)
