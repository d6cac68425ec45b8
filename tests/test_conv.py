"""Tests of refimpl/conv.py: hand-derived goldens, torch agreement, gradients, errors."""
import doctest

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
import torch.nn.grad  # noqa: E402

import refimpl.conv  # noqa: E402
from refimpl.conv import (conv, conv_at, conv_grad_bias, conv_grad_input,  # noqa: E402
                          conv_grad_weight, conv_transpose)
from refimpl.geometry import layer_padding  # noqa: E402

TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TORCH_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
TORCH_GRAD = {1: (torch.nn.grad.conv1d_input, torch.nn.grad.conv1d_weight),
              2: (torch.nn.grad.conv2d_input, torch.nn.grad.conv2d_weight),
              3: (torch.nn.grad.conv3d_input, torch.nn.grad.conv3d_weight)}
TORCH_BORDER = {"constant": "constant", "edge": "replicate", "reflect": "reflect",
                "wrap": "circular"}
NON_CONSTANT = ("edge", "symmetric", "reflect", "wrap")
TIGHT = dict(rtol=1e-12, atol=1e-12)


def tt(a):
    return torch.from_numpy(np.array(a, dtype=np.float64))


def torch_pad_widths(pads):
    """refimpl's per-axis (lo, hi) pairs as F.pad's flat list, last axis first."""
    return [v for lo, hi in reversed(pads) for v in (lo, hi)]


def random_case(seed, n, c, o, spatial, kernel, groups, bias=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c) + tuple(spatial))
    w = rng.standard_normal((o, c // groups) + tuple(kernel))
    b = rng.standard_normal(o) if bias else None
    return x, w, b


# ---------------------------------------------------------------------------------------
# Goldens, derived by hand
# ---------------------------------------------------------------------------------------

def test_doctests():
    assert doctest.testmod(refimpl.conv).failed == 0


def test_golden_plain_1d():
    # y[p] = x[p] + 2 x[p+1]: 1+4, 2+6, 3+8, 4+10
    y = conv([[[1., 2., 3., 4., 5.]]], [[[1., 2.]]])
    np.testing.assert_array_equal(y, [[[5., 8., 11., 14.]]])


def test_golden_stride_dilation_cval():
    # xp = 10 1 2 3 4 5 10; taps p*2 + {0, 2}; out (7 - 3)//2 + 1 = 3
    # p0: xp0 + xp2 = 10 + 2 = 12, p1: xp2 + xp4 = 2 + 4 = 6, p2: xp4 + xp6 = 4 + 10 = 14
    y = conv([[[1., 2., 3., 4., 5.]]], [[[1., 1.]]], stride=2, dilation=2, padding=1, cval=10.0)
    np.testing.assert_array_equal(y, [[[12., 6., 14.]]])


@pytest.mark.parametrize("border, expected", [
    # x = 1 2 3 padded by 4 on each side; a 1-tap kernel [1] returns xp itself.
    ("constant", [7, 7, 7, 7, 1, 2, 3, 7, 7, 7, 7]),
    ("edge", [1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3]),
    # period 6: 1 2 3 3 2 1 | 1 2 3 3 2 1 ...
    ("symmetric", [3, 3, 2, 1, 1, 2, 3, 3, 2, 1, 1]),
    # period 4: 1 2 3 2 | 1 2 3 2 ...
    ("reflect", [1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3]),
    ("wrap", [3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1]),
])
def test_golden_borders_wider_than_input(border, expected):
    y = conv([[[1., 2., 3.]]], [[[1.]]], padding=((4, 4),), border=border, cval=7.0)
    np.testing.assert_array_equal(y, [[expected]])
    np.testing.assert_array_equal(
        y[0, 0], np.pad([1., 2., 3.], 4, border, **({"constant_values": 7.0}
                                                     if border == "constant" else {})))


def test_golden_border_aliases():
    x, w = [[[1., 2., 3., 4.]]], [[[1., 0., 0.]]]
    for alias, canonical in [("replicate", "edge"), ("mirror", "reflect"),
                             ("circular", "wrap"), ("grid-mirror", "symmetric")]:
        np.testing.assert_array_equal(conv(x, w, padding=2, border=alias),
                                      conv(x, w, padding=2, border=canonical))
    # reflect is numpy's (c b | a b c d), not scipy.ndimage's: first two outputs read xp0, xp1
    np.testing.assert_array_equal(conv(x, w, padding=2, border="reflect")[0, 0, :2], [3., 2.])


def test_golden_2d_full():
    # all-ones 2x2 kernel over [[1, 2], [3, 4]] zero-padded by 1: sums of 2x2 windows
    # [[1, 1+2, 2], [1+3, 1+2+3+4, 2+4], [3, 3+4, 4]]
    y = conv([[[[1., 2.], [3., 4.]]]], np.ones((1, 1, 2, 2)), padding=1)
    np.testing.assert_array_equal(y, [[[[1., 3., 2.], [4., 10., 6.], [3., 7., 4.]]]])


def test_golden_groups_and_bias():
    # groups=2: output 0 reads channel 0 only (weight 2, bias 1), output 1 channel 1 (3, -1)
    x = [[[1., 2., 3.], [10., 20., 30.]]]
    y = conv(x, [[[2.]], [[3.]]], [1., -1.], groups=2)
    np.testing.assert_array_equal(y, [[[3., 5., 7.], [29., 59., 89.]]])


def test_golden_same_with_stride():
    # in 6, k 3, stride 2: out ceil(6/2) = 3, total pad (3-1)*2 + 3 - 6 = 1, on the high side
    # xp = 1 2 3 4 5 6 0: 1+2+3, 3+4+5, 5+6+0
    assert layer_padding((6,), (3,), "same", stride=2) == ((0, 1),)
    y = conv([[[1., 2., 3., 4., 5., 6.]]], [[[1., 1., 1.]]], padding="same", stride=2)
    np.testing.assert_array_equal(y, [[[6., 12., 11.]]])


def test_golden_transpose():
    # x0 = 1 spreads w over 0..2: 1 2 3 0 0; x1 = 2 over 2..4: 0 0 2 4 6; sum 1 2 5 4 6
    y = conv_transpose([[[1., 2.]]], [[[1., 2., 3.]]], stride=2)
    np.testing.assert_array_equal(y, [[[1., 2., 5., 4., 6.]]])
    # dilation 2: taps at 0, 2, 4 (+2 for x1): 1 0 2+2 0 3+4 0 6
    y = conv_transpose([[[1., 2.]]], [[[1., 2., 3.]]], stride=2, dilation=2)
    np.testing.assert_array_equal(y, [[[1., 0., 4., 0., 7., 0., 6.]]])


@pytest.mark.parametrize("border, expected", [
    # padded positions j = 0..6 receive 1, 3, 6, 6, 6, 5, 3 (w = 1 2 3, dy = 1);
    # j = 0 reads source(-1), j = 6 reads source(5)
    ("constant", [3., 6., 6., 6., 5.]),            # both dropped
    ("edge", [1. + 3., 6., 6., 6., 5. + 3.]),       # -1 -> 0, 5 -> 4
    ("symmetric", [1. + 3., 6., 6., 6., 5. + 3.]),  # -1 -> 0, 5 -> 4 as well
    ("reflect", [3., 6. + 1., 6., 6. + 3., 5.]),    # -1 -> 1, 5 -> 3
    ("wrap", [3. + 3., 6., 6., 6., 5. + 1.]),       # -1 -> 4, 5 -> 0
])
def test_golden_grad_input_folds(border, expected):
    dx = conv_grad_input(np.ones((1, 1, 5)), [[[1., 2., 3.]]], (1, 1, 5), padding=1,
                         border=border, cval=5.0)
    np.testing.assert_array_equal(dx, [[expected]])


def test_golden_grad_weight_and_bias():
    # xp = 10 1 2 3 10; dw[r] = sum_p xp[p + r]: 10+1+2, 1+2+3, 2+3+10
    dw = conv_grad_weight([[[1., 2., 3.]]], np.ones((1, 1, 3)), (1, 1, 3), padding=1, cval=10.0)
    np.testing.assert_array_equal(dw, [[[13., 6., 15.]]])
    # db[o] = sum over n and p: o=0: 1+2+5+6, o=1: 3+4+7+8
    dy = np.arange(1., 9.).reshape(2, 2, 2)
    np.testing.assert_array_equal(conv_grad_bias(dy), [14., 22.])


def test_integer_and_complex_inputs():
    x = np.arange(10, dtype=np.uint8).reshape(1, 2, 5) * 25
    w = np.arange(12, dtype=np.int16).reshape(2, 2, 3) - 6
    y = conv(x, w, padding=1)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, conv(x.astype(float), w.astype(float), padding=1))
    xc = np.array([[[1 + 1j, 2., 3j]]])
    yc = conv(xc, [[[1., 1j]]])
    assert yc.dtype == np.complex128
    np.testing.assert_array_equal(yc, [[[1 + 1j + 2j, 2. + 1j * 3j]]])


# ---------------------------------------------------------------------------------------
# Agreement with torch.nn.functional.conv{1,2,3}d
# ---------------------------------------------------------------------------------------

# (n, c, o, spatial, kernel, groups, stride, padding, dilation)
TORCH_CASES = {
    "1d-pad1": (2, 3, 4, (9,), (3,), 1, 1, 1, 1),
    "1d-valid-stride2-dil2": (2, 2, 3, (11,), (3,), 1, 2, "valid", 2),
    "1d-depthwise-same": (1, 3, 3, (8,), (4,), 3, 1, "same", 1),
    "1d-groups2-stride3": (2, 4, 6, (10,), (3,), 2, 3, 2, 1),
    "1d-kernel-bigger-than-input": (1, 2, 2, (3,), (5,), 1, 1, 2, 1),
    "1d-one-sample": (2, 2, 3, (1,), (1,), 1, 1, 0, 1),
    "2d-mixed-tuples": (2, 2, 3, (6, 7), (3, 2), 1, (2, 1), (1, 0), (1, 2)),
    "2d-depthwise-mult2-same-dil2": (1, 4, 8, (6, 5), (3, 3), 4, 1, "same", 2),
    "2d-groups2-valid-even": (2, 4, 4, (5, 7), (2, 4), 2, 2, "valid", 1),
    "2d-pad2": (1, 3, 2, (4, 4), (3, 3), 1, 1, 2, 1),
    "3d-mixed": (1, 2, 2, (4, 5, 3), (2, 3, 1), 2, (1, 2, 1), (1, 0, 1), (2, 1, 1)),
    "3d-same": (1, 1, 2, (3, 4, 5), (3, 3, 3), 1, 1, "same", 1),
}


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", TORCH_CASES.values(), ids=TORCH_CASES.keys())
def test_conv_matches_torch(case, bias):
    n, c, o, spatial, kernel, groups, stride, padding, dilation = case
    x, w, b = random_case(len(spatial) * 7 + c, n, c, o, spatial, kernel, groups, bias)
    y = conv(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    ref = TORCH_CONV[len(spatial)](tt(x), tt(w), None if b is None else tt(b), stride=stride,
                                   padding=padding, dilation=dilation, groups=groups)
    np.testing.assert_allclose(y, ref.numpy(), **TIGHT)


# (spatial, kernel, stride, dilation, padding) for padding torch has no argument for
SIDED_CASES = {
    "1d-same-stride3-even-kernel": ((7,), (4,), 3, 1, "same"),
    "1d-same-stride2-even-input": ((6,), (3,), 2, 1, "same"),
    "2d-same-stride-dil": ((6, 5), (3, 2), (2, 3), (1, 2), "same"),
    "3d-same-stride2": ((5, 4, 3), (2, 3, 3), 2, 1, "same"),
    "1d-pairs": ((5,), (3,), 1, 1, ((0, 3),)),
    "2d-pairs": ((4, 5), (2, 3), (1, 2), 1, ((0, 2), (1, 0))),
    "3d-pairs": ((3, 3, 4), (2, 2, 2), 1, (1, 1, 2), ((1, 0), (0, 0), (2, 1))),
}


@pytest.mark.parametrize("case", SIDED_CASES.values(), ids=SIDED_CASES.keys())
def test_conv_per_side_padding_matches_explicit_torch_pad(case):
    spatial, kernel, stride, dilation, padding = case
    x, w, b = random_case(3, 2, 2, 3, spatial, kernel, 1)
    pads = layer_padding(spatial, kernel, padding, stride, dilation)
    y = conv(x, w, b, stride=stride, padding=padding, dilation=dilation)
    xp = F.pad(tt(x), torch_pad_widths(pads))
    ref = TORCH_CONV[len(spatial)](xp, tt(w), tt(b), stride=stride, dilation=dilation)
    np.testing.assert_allclose(y, ref.numpy(), **TIGHT)
    if padding == "same":   # output ceil(in / stride) on every axis
        s = (stride,) * len(spatial) if isinstance(stride, int) else stride
        assert y.shape[2:] == tuple(-(-i // si) for i, si in zip(spatial, s))


def pad_reference(x, pads, border, cval):
    """x padded by torch's F.pad where torch can do it, else by numpy.pad."""
    fits = all(lo < n and hi < n for n, (lo, hi) in zip(x.shape[2:], pads))
    if border in TORCH_BORDER and (border in ("constant", "edge") or fits):
        kw = {"value": cval} if border == "constant" else {}
        return F.pad(tt(x), torch_pad_widths(pads), mode=TORCH_BORDER[border], **kw)
    kw = {"constant_values": cval} if border == "constant" else {}
    return tt(np.pad(x, ((0, 0), (0, 0)) + tuple(pads), mode=border, **kw))


# (spatial, kernel, stride, dilation, padding, groups)
BORDER_CASES = {
    "1d": ((6,), (3,), 1, 1, 2, 1),
    "1d-wide": ((3,), (4,), 2, 1, ((5, 4),), 1),
    "2d": ((5, 4), (3, 2), (2, 1), (1, 2), ((2, 1), (1, 2)), 2),
    "2d-same-stride": ((5, 6), (4, 3), 2, 1, "same", 1),
    "3d": ((3, 4, 3), (2, 3, 2), 1, (2, 1, 1), 1, 2),
}


@pytest.mark.parametrize("border", ("constant",) + NON_CONSTANT)
@pytest.mark.parametrize("case", BORDER_CASES.values(), ids=BORDER_CASES.keys())
def test_conv_borders_match_torch_pad(case, border):
    spatial, kernel, stride, dilation, padding, groups = case
    x, w, b = random_case(5, 1, 2, 4, spatial, kernel, groups)
    pads = layer_padding(spatial, kernel, padding, stride, dilation)
    y = conv(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups,
             border=border, cval=-1.5)
    xp = pad_reference(x, pads, border, -1.5)
    ref = TORCH_CONV[len(spatial)](xp, tt(w), tt(b), stride=stride, dilation=dilation,
                                   groups=groups)
    np.testing.assert_allclose(y, ref.numpy(), **TIGHT)


# ---------------------------------------------------------------------------------------
# conv_transpose vs torch
# ---------------------------------------------------------------------------------------

# (n, c_in, o, spatial, kernel, groups, stride, padding, output_padding, dilation)
TRANSPOSE_CASES = {
    "1d-stride2-outpad1": (2, 3, 2, (4,), (3,), 1, 2, 1, 1, 1),
    "1d-groups3-dil2": (1, 3, 6, (5,), (2,), 3, 1, 0, 0, 2),
    "1d-outpad-below-dilation": (1, 2, 2, (3,), (3,), 2, 1, 1, 1, 3),
    "2d-mixed": (2, 2, 3, (3, 4), (3, 2), 1, (2, 3), (1, 0), (1, 2), (1, 2)),
    "2d-groups2-big-padding": (1, 4, 2, (4, 3), (3, 3), 2, 2, 2, 0, 1),
    "3d-mixed": (1, 2, 4, (2, 3, 2), (2, 2, 3), 2, (2, 1, 2), (0, 1, 1), (1, 0, 0), 1),
}


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", TRANSPOSE_CASES.values(), ids=TRANSPOSE_CASES.keys())
def test_conv_transpose_matches_torch(case, bias):
    n, c, o, spatial, kernel, groups, stride, padding, output_padding, dilation = case
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, c) + spatial)
    w = rng.standard_normal((c, o // groups) + kernel)
    b = rng.standard_normal(o) if bias else None
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation,
              groups=groups)
    y = conv_transpose(x, w, b, **kw)
    ref = TORCH_CONV_T[len(spatial)](tt(x), tt(w), None if b is None else tt(b), **kw)
    np.testing.assert_allclose(y, ref.numpy(), **TIGHT)


# ---------------------------------------------------------------------------------------
# Gradients: finite differences, adjoint identities, conv_transpose, torch autograd
# ---------------------------------------------------------------------------------------

def central_difference(f, a, h=0.5):
    """d f / d a, one element at a time. f is affine in a, so this is exact up to rounding."""
    grad = np.zeros_like(a)
    for i in np.ndindex(*a.shape):
        step = np.zeros_like(a)
        step[i] = h
        grad[i] = (f(a + step) - f(a - step)) / (2 * h)
    return grad


# (spatial, kernel, stride, dilation, padding, groups)
GRAD_CASES = {
    "1d": ((5,), (3,), 2, 1, 2, 1),
    "1d-wide-pairs": ((3,), (3,), 1, 2, ((4, 3),), 2),
    "2d": ((4, 3), (2, 3), (1, 2), (2, 1), "same", 2),
    "3d": ((2, 3, 2), (2, 2, 1), 1, 1, ((1, 0), (0, 1), (1, 1)), 1),
}


@pytest.mark.parametrize("border", ("constant",) + NON_CONSTANT)
@pytest.mark.parametrize("case", GRAD_CASES.values(), ids=GRAD_CASES.keys())
def test_gradients_match_finite_differences(case, border):
    spatial, kernel, stride, dilation, padding, groups = case
    x, w, b = random_case(17, 1, 2, 2, spatial, kernel, groups)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, border=border,
              cval=0.75)
    dy = np.random.default_rng(18).standard_normal(conv(x, w, **kw).shape)

    def loss(x_, w_, b_):
        return np.sum(conv(x_, w_, b_, **kw) * dy)

    np.testing.assert_allclose(conv_grad_input(dy, w, x.shape, **kw),
                               central_difference(lambda a: loss(a, w, b), x), **TIGHT)
    np.testing.assert_allclose(conv_grad_weight(x, dy, w.shape, **kw),
                               central_difference(lambda a: loss(x, a, b), w), **TIGHT)
    np.testing.assert_allclose(conv_grad_bias(dy),
                               central_difference(lambda a: loss(x, w, a), b), **TIGHT)


@pytest.mark.parametrize("border", ("constant",) + NON_CONSTANT)
@pytest.mark.parametrize("case", TORCH_CASES.values(), ids=TORCH_CASES.keys())
def test_adjoint_identities(case, border):
    # every border but constant-with-cval is linear in x: <conv(x, w), dy> = <x, dconv_x^T dy>;
    # conv is linear in w for every border and cval: <conv(x, w), dy> = <w, dconv_w^T dy>
    n, c, o, spatial, kernel, groups, stride, padding, dilation = case
    x, w, _ = random_case(23, n, c, o, spatial, kernel, groups, bias=False)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, border=border)
    y = conv(x, w, **kw)
    dy = np.random.default_rng(24).standard_normal(y.shape)
    lhs = np.vdot(y, dy)
    np.testing.assert_allclose(np.vdot(x, conv_grad_input(dy, w, x.shape, **kw)), lhs,
                               rtol=1e-12)
    y_cval = conv(x, w, cval=2.5, **kw)
    np.testing.assert_allclose(np.vdot(w, conv_grad_weight(x, dy, w.shape, cval=2.5, **kw)),
                               np.vdot(y_cval, dy), rtol=1e-12)


@pytest.mark.parametrize("case", TRANSPOSE_CASES.values(), ids=TRANSPOSE_CASES.keys())
def test_conv_transpose_is_grad_input(case):
    n, c, o, spatial, kernel, groups, stride, padding, output_padding, dilation = case
    if any(op >= s for op, s in zip(np.broadcast_to(output_padding, len(spatial)),
                                    np.broadcast_to(stride, len(spatial)))):
        pytest.skip("output_padding >= stride: conv of that shape has a longer output")
    rng = np.random.default_rng(31)
    x = rng.standard_normal((n, c) + spatial)
    w = rng.standard_normal((c, o // groups) + kernel)
    y = conv_transpose(x, w, stride=stride, padding=padding, output_padding=output_padding,
                       dilation=dilation, groups=groups)
    # the same w read as a conv weight (O = c, C/groups = o/groups): y's shape is conv's input
    dx = conv_grad_input(x, w, y.shape, stride=stride, padding=padding, dilation=dilation,
                         groups=groups)
    np.testing.assert_array_equal(y, dx)     # same products, correctly rounded sums


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
@pytest.mark.parametrize("case", TORCH_CASES.values(), ids=TORCH_CASES.keys())
def test_gradients_match_torch(case):
    n, c, o, spatial, kernel, groups, stride, padding, dilation = case
    x, w, b = random_case(41, n, c, o, spatial, kernel, groups)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    dy = np.random.default_rng(42).standard_normal(conv(x, w, **kw).shape)
    xt, wt, bt = (tt(a).requires_grad_() for a in (x, w, b))
    TORCH_CONV[len(spatial)](xt, wt, bt, **kw).backward(tt(dy))
    dx = conv_grad_input(dy, w, x.shape, **kw)
    dw = conv_grad_weight(x, dy, w.shape, **kw)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **TIGHT)
    np.testing.assert_allclose(dw, wt.grad.numpy(), **TIGHT)
    np.testing.assert_allclose(conv_grad_bias(dy), bt.grad.numpy(), **TIGHT)
    if isinstance(padding, str):      # torch.nn.grad takes numeric padding only
        return
    grad_input, grad_weight = TORCH_GRAD[len(spatial)]
    np.testing.assert_allclose(dx, grad_input(x.shape, tt(w), tt(dy), **kw).numpy(), **TIGHT)
    np.testing.assert_allclose(dw, grad_weight(tt(x), w.shape, tt(dy), **kw).numpy(), **TIGHT)


@pytest.mark.parametrize("border", NON_CONSTANT)
@pytest.mark.parametrize("case", BORDER_CASES.values(), ids=BORDER_CASES.keys())
def test_border_gradients_match_autograd(case, border):
    # torch differentiates through the padding: F.pad where torch can, else a gather whose
    # indices numpy.pad computes (np.pad of arange per axis), any width
    spatial, kernel, stride, dilation, padding, groups = case
    x, w, b = random_case(51, 2, 2, 4, spatial, kernel, groups)
    pads = layer_padding(spatial, kernel, padding, stride, dilation)
    kw = dict(stride=stride, dilation=dilation, groups=groups)
    xt, wt = tt(x).requires_grad_(), tt(w).requires_grad_()
    fits = all(lo < s and hi < s for s, (lo, hi) in zip(spatial, pads))
    if border != "symmetric" and (border == "edge" or fits):
        xp = F.pad(xt, torch_pad_widths(pads), mode=TORCH_BORDER[border])
    else:
        xp = xt
        for axis, (size, width) in enumerate(zip(spatial, pads)):
            idx = torch.from_numpy(np.pad(np.arange(size), width, mode=border))
            xp = xp.index_select(2 + axis, idx)
    y = TORCH_CONV[len(spatial)](xp, wt, **kw)
    dy = np.random.default_rng(52).standard_normal(tuple(y.shape))
    y.backward(tt(dy))
    kw.update(padding=padding, border=border)
    np.testing.assert_allclose(conv_grad_input(dy, w, x.shape, **kw), xt.grad.numpy(), **TIGHT)
    np.testing.assert_allclose(conv_grad_weight(x, dy, w.shape, **kw), wt.grad.numpy(),
                               **TIGHT)


# ---------------------------------------------------------------------------------------
# conv_at: the pointwise oracle
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("border", ("constant",) + NON_CONSTANT)
@pytest.mark.parametrize("case", BORDER_CASES.values(), ids=BORDER_CASES.keys())
def test_conv_at_equals_conv(case, border):
    spatial, kernel, stride, dilation, padding, groups = case
    x, w, b = random_case(61, 2, 2, 4, spatial, kernel, groups)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, border=border,
              cval=0.3)
    y = conv(x, w, b, **kw)
    rng = np.random.default_rng(62)
    # every corner of the output (each reads the border on each axis) and random points
    corners = [(1, 3) + tuple(p) for p in np.ndindex(*(2,) * len(spatial))]
    corners = [(n, o) + tuple(0 if c == 0 else -1 for c in p) for n, o, *p in corners]
    points = [tuple(int(rng.integers(s)) for s in y.shape) for _ in range(10)]
    for index in corners + points:
        assert conv_at(x, w, b, index, **kw) == y[index], index


def test_conv_at_reads_only_what_it_needs():
    # a 40000 x 40000 input (a broadcast view of one sample): conv could not build this
    x = np.broadcast_to(np.float32(2.0), (1, 1, 40000, 40000))
    w = np.ones((1, 1, 3, 3))
    assert conv_at(x, w, [1.0], (0, 0, 39999, 0), padding=1) == 1.0 + 2.0 * 4
    assert conv_at(x, w, None, (0, 0, -1, -1), padding=1, border="reflect") == 2.0 * 9


def test_conv_at_complex():
    rng = np.random.default_rng(71)
    x = rng.standard_normal((1, 2, 5)) + 1j * rng.standard_normal((1, 2, 5))
    w = rng.standard_normal((3, 2, 2))
    y = conv(x, w, padding=1, border="wrap")
    for p in range(6):
        np.testing.assert_allclose(conv_at(x, w, None, (0, 2, p), padding=1, border="wrap"),
                                   y[0, 2, p], rtol=1e-14)


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------

X = np.ones((1, 4, 5))
W = np.ones((2, 4, 3))

BAD_CONV = [
    ("x-rank-low", dict(x=np.ones((4, 5))), ValueError, "x must have 3 to 5 dimensions"),
    ("x-rank-high", dict(x=np.ones((1,) * 6), w=np.ones((1,) * 6)), ValueError,
     "x must have 3 to 5 dimensions"),
    ("w-rank", dict(w=np.ones((2, 4, 3, 3))), ValueError, "w must have the rank of x"),
    ("channels", dict(w=np.ones((2, 3, 3))), ValueError, r"w.shape\[1\] \* groups"),
    ("channels-groups", dict(w=np.ones((2, 4, 3)), groups=2), ValueError,
     r"w.shape\[1\] \* groups"),
    ("O-not-divisible", dict(w=np.ones((3, 2, 3)), groups=2), ValueError,
     "groups=2 must divide the output channels"),
    ("C-not-divisible", dict(w=np.ones((3, 1, 3)), groups=3), ValueError,
     "groups=3 must divide the channels C=4 of x"),
    ("groups-zero", dict(groups=0), ValueError, "groups"),
    ("groups-float", dict(groups=1.0), TypeError, "groups"),
    ("stride-zero", dict(stride=0), ValueError, "stride"),
    ("stride-negative", dict(stride=(-1,)), ValueError, "stride"),
    ("dilation-zero", dict(dilation=0), ValueError, "dilation"),
    ("x-empty", dict(x=np.ones((0, 4, 5))), ValueError, "x must not be empty"),
    ("w-empty", dict(w=np.ones((2, 4, 0))), ValueError, "w must not be empty"),
    ("x-strings", dict(x=np.array([[["a"]]])), TypeError, "x must hold"),
    ("kernel-too-large", dict(w=np.ones((2, 4, 6))), ValueError, "kernel w"),
    ("kernel-too-large-dilated", dict(dilation=4, padding=1), ValueError, "kernel w"),
    ("bias-shape", dict(bias=np.ones(3)), ValueError, r"bias must have shape \(O,\)"),
    ("border", dict(border="nope"), ValueError, "border"),
    ("border-type", dict(border=0), TypeError, "border"),
    ("cval-nan", dict(cval=np.nan), ValueError, "cval must be finite"),
    ("cval-inf", dict(cval=float("inf")), ValueError, "cval must be finite"),
    ("cval-type", dict(cval="0"), TypeError, "cval"),
    ("padding-string", dict(padding="full"), ValueError, "padding"),
    ("padding-negative", dict(padding=-1), ValueError, "padding"),
    ("padding-length", dict(padding=(1, 1)), ValueError, "padding"),
]


@pytest.mark.parametrize("name, changes, error, match", BAD_CONV, ids=[b[0] for b in BAD_CONV])
def test_conv_rejects(name, changes, error, match):
    kw = dict(x=X, w=W, bias=None)
    kw.update(changes)
    x, w, bias = kw.pop("x"), kw.pop("w"), kw.pop("bias")
    with pytest.raises(error, match=match):
        conv(x, w, bias, **kw)
    with pytest.raises(error, match=match):
        conv_at(x, w, bias, (0, 0, 0), **kw)
    if "bias" not in name and "x-" not in name:
        with pytest.raises(error, match=match.replace("x must", "input_shape must")
                           .replace(" of x", " of input_shape")):
            conv_grad_input(np.ones((1, 2, 3)), w, np.shape(x), **kw)


def test_errors_come_before_any_work():
    huge = np.broadcast_to(1.0, (1, 1, 10 ** 5, 10 ** 5))
    with pytest.raises(ValueError, match="cval"):
        conv(huge, np.ones((1, 1, 3, 3)), cval=np.inf)


def test_grad_argument_errors():
    dy = np.ones((1, 2, 3))
    with pytest.raises(ValueError, match="dy must have the shape of conv's output"):
        conv_grad_input(np.ones((1, 2, 4)), W, X.shape)
    with pytest.raises(ValueError, match="dy must have the shape of conv's output"):
        conv_grad_weight(X, np.ones((1, 3, 3)), W.shape)
    with pytest.raises(TypeError, match="input_shape"):
        conv_grad_input(dy, W, 5)
    with pytest.raises(ValueError, match="input_shape must not be empty"):
        conv_grad_input(dy, W, (1, 4, 0))
    with pytest.raises(ValueError, match="weight_shape must have the rank of x"):
        conv_grad_weight(X, dy, (2, 4))
    with pytest.raises(ValueError, match=r"weight_shape.shape\[1\] \* groups"):
        conv_grad_weight(X, dy, (2, 3, 3))
    with pytest.raises(ValueError, match="dy must have 3 to 5 dimensions"):
        conv_grad_bias(np.ones(3))
    with pytest.raises(ValueError, match="dy must not be empty"):
        conv_grad_bias(np.ones((1, 0, 3)))


def test_conv_at_index_errors():
    with pytest.raises(TypeError, match="index"):
        conv_at(X, W, None, (0, 0))
    with pytest.raises(TypeError, match="index"):
        conv_at(X, W, None, 3)
    with pytest.raises(IndexError, match="index"):
        conv_at(X, W, None, (0, 2, 0))


@pytest.mark.parametrize("changes, error, match", [
    (dict(output_padding=2, stride=2), ValueError, "output_padding"),
    (dict(output_padding=1), ValueError, "output_padding"),
    (dict(output_padding=2, stride=2, dilation=3), None, None),   # allowed: 2 < max(2, 3)
    (dict(output_padding=3, stride=2, dilation=3), ValueError, "output_padding"),
    (dict(w=np.ones((3, 2, 3))), ValueError, r"w.shape\[0\] must equal the channels"),
    (dict(groups=3), ValueError, "groups=3 must divide the channels"),
    (dict(padding="same"), TypeError, "padding"),
    (dict(padding=-1), ValueError, "padding"),
    (dict(stride=0), ValueError, "stride"),
    (dict(dilation=0), ValueError, "dilation"),
    (dict(bias=np.ones(2)), ValueError, "bias"),
    (dict(x=np.ones((4, 5))), ValueError, "x must have 3 to 5 dimensions"),
    (dict(w=np.ones((4, 2))), ValueError, "w must have the rank of x"),
    (dict(x=np.ones((1, 4, 0))), ValueError, "x must not be empty"),
    (dict(padding=9), ValueError, "empty"),
])
def test_conv_transpose_rejects(changes, error, match):
    kw = dict(x=X, w=np.ones((4, 3, 3)), bias=None)   # w (C_in, O/groups, k): O = 3
    kw.update(changes)
    x, w, bias = kw.pop("x"), kw.pop("w"), kw.pop("bias")
    if error is None:
        assert conv_transpose(x, w, bias, **kw).shape == (1, 3, 17)
        return
    with pytest.raises(error, match=match):
        conv_transpose(x, w, bias, **kw)


# =======================================================================================
# The layer-form ops in the harness (convbench/ops/conv.py, convbench/cases/conv.py), the
# conv-family candidates, the pointwise oracles and the planted-bug catalogue
# =======================================================================================

import functools  # noqa: E402

import convbench  # noqa: E402
from convbench import registry  # noqa: E402
from convbench.cases import suite  # noqa: E402
from convbench.spec import Spec  # noqa: E402
from convbench.verification import WHOLE_LIMIT, verify_candidates  # noqa: E402
from convbench.api import apply  # noqa: E402
from refimpl.conv import (conv_grad_input_at, conv_grad_weight_at,  # noqa: E402
                          conv_transpose_at)
from refimpl.geometry import conv_output_shape  # noqa: E402

LAYER_OPS = ("conv", "conv_transpose", "conv_grad_input", "conv_grad_weight", "conv_grad_bias")


# ---------------------------------------------------------------------------------------
# Pointwise oracles of the transpose and the gradients: identical to the whole oracles
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("border", ("constant",) + NON_CONSTANT)
@pytest.mark.parametrize("case", BORDER_CASES.values(), ids=BORDER_CASES.keys())
def test_grad_at_equals_whole_gradients(case, border):
    spatial, kernel, stride, dilation, padding, groups = case
    x, w, _ = random_case(81, 2, 2, 4, spatial, kernel, groups)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, border=border,
              cval=-0.6)
    dy = np.random.default_rng(82).standard_normal(conv(x, w, **kw).shape)
    dx = conv_grad_input(dy, w, x.shape, **kw)
    dw = conv_grad_weight(x, dy, w.shape, **kw)
    for index in np.ndindex(*x.shape):
        assert conv_grad_input_at(dy, w, x.shape, index, **kw) == dx[index], index
    for index in np.ndindex(*w.shape):
        assert conv_grad_weight_at(x, dy, w.shape, index, **kw) == dw[index], index


@pytest.mark.parametrize("case", TRANSPOSE_CASES.values(), ids=TRANSPOSE_CASES.keys())
def test_conv_transpose_at_equals_whole(case):
    n, c, o, spatial, kernel, groups, stride, padding, output_padding, dilation = case
    rng = np.random.default_rng(83)
    x = rng.standard_normal((n, c) + spatial)
    w = rng.standard_normal((c, o // groups) + kernel)
    b = rng.standard_normal(o)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation,
              groups=groups)
    y = conv_transpose(x, w, b, **kw)
    for index in np.ndindex(*y.shape):
        assert conv_transpose_at(x, w, b, index, **kw) == y[index], index


def test_grad_at_golden():
    # dx of a reflect border: w = 1 2 3, dy = 1, padding 1 on 5 samples. Padded position j
    # receives 1, 3, 6, 6, 6, 5, 3 (j = 0..6); j = 0 reads x[1], j = 6 reads x[3]
    w, dy = np.array([[[1., 2., 3.]]]), np.ones((1, 1, 5))
    got = [conv_grad_input_at(dy, w, (1, 1, 5), (0, 0, i), padding=1, border="reflect")
           for i in range(5)]
    assert got == [3., 6. + 1., 6., 6. + 3., 5.]
    # dw with cval 10: xp = 10 1 2 3 10; dw[r] = sum_p xp[p + r] = 13, 6, 15
    x = np.array([[[1., 2., 3.]]])
    got = [conv_grad_weight_at(x, np.ones((1, 1, 3)), (1, 1, 3), (0, 0, r), padding=1, cval=10.)
           for r in range(3)]
    assert got == [13., 6., 15.]
    # conv_transpose stride 2 of x = 1 2 with w = 1 2 3: 1 2 5 4 6
    got = [conv_transpose_at([[[1., 2.]]], [[[1., 2., 3.]]], None, (0, 0, q), stride=2)
           for q in range(5)]
    assert got == [1., 2., 5., 4., 6.]


def test_grad_weight_at_on_a_broadcast_input():
    # x = 2.0 everywhere (a broadcast view, 3 x 20000), dy = 1, 3 x 3 kernel, padding 1: the
    # output is 3 x 20000. Tap (0, 0) reads x[p0 - 1, p1 - 1]: inside for p0 >= 1 and p1 >= 1,
    # 2 * 19999 samples of 2.0 (the rest is the zero border); tap (1, 1) reads all 3 * 20000.
    x = np.broadcast_to(2.0, (1, 1, 3, 20000))
    dy = np.ones((1, 1, 3, 20000))
    assert conv_grad_weight_at(x, dy, (1, 1, 3, 3), (0, 0, 0, 0), padding=1) == 2.0 * 2 * 19999
    assert conv_grad_weight_at(x, dy, (1, 1, 3, 3), (0, 0, 1, 1), padding=1) == 2.0 * 3 * 20000


# ---------------------------------------------------------------------------------------
# The op table: ids, shapes, terms, zones, work, pointwise oracle
# ---------------------------------------------------------------------------------------

def test_spec_ids_are_short_and_readable():
    spec = Spec.make("conv", [(1, 128, 32, 32), (256, 128, 3, 3)], ["float32"] * 2, padding=1)
    assert spec.id == "conv-x1x128x32x32-w256x128x3x3-padding=1-f32"
    spec = Spec.make("conv", [(1, 4, 9, 8), (6, 2, 3, 2), (6,)], ["float64"] * 3, groups=2,
                     padding=[[1, 0], [2, 1]], stride=(2, 2), border="mirror", cval=3)
    assert spec.id == ("conv-x1x4x9x8-w6x2x3x2-bias6-groups=2-padding=(1,0),(2,1)-stride=2-"
                       "reflect-f64")
    assert spec.kwargs["cval"] == 0.0          # cval means nothing for a reflect border
    spec = Spec.make("conv_grad_input", [(1, 6, 5), (6, 2, 3)], ["float16"] * 2,
                     input_shape=(1, 2, 7), cval=1.5)
    assert spec.id == "conv_grad_input-dy1x6x5-w6x2x3-x1x2x7-cval=1.5-f16"
    spec = Spec.make("conv_grad_weight", [(1, 2, 7), (1, 6, 7)], ["float32"] * 2,
                     weight_shape=(6, 2, 3), padding="same", border="wrap")
    assert spec.id == "conv_grad_weight-x1x2x7-dy1x6x7-w6x2x3-padding=same-wrap-f32"
    spec = Spec.make("conv_transpose", [(1, 4, 5), (4, 3, 3)], ["float32"] * 2, stride=2,
                     output_padding=1)
    assert spec.id == "conv_transpose-x1x4x5-w4x3x3-output_padding=1-stride=2-f32"
    assert Spec.make("conv_grad_bias", [(2, 3, 4)], ["float64"]).id == "conv_grad_bias-dy2x3x4-f64"


def test_output_shapes_terms_and_zones():
    # 7 samples, k 3, stride 2, 'same': out ceil(7/2) = 4, total pad (4-1)*2 + 3 - 7 = 2 -> (1, 1)
    spec = Spec.make("conv", [(2, 4, 7), (6, 2, 3), (6,)], ["float32"] * 3, groups=2,
                     stride=2, padding="same")
    assert spec.output_shape() == (2, 6, 4)
    assert spec.operation.terms(spec) == 2 * 3 + 1          # C/groups * k + bias
    # p*2 - 1 < 0 only for p = 0; p*2 + 2 - 1 >= 7 only for p = 3
    assert spec.operation.border_zones(spec) == ((0, 0), (0, 0), (1, 1))
    # conv_grad_weight: K = N * out = 2 * 4; taps r: r - 1 < 0 for r = 0; 6 + r - 1 >= 7 for r = 2
    spec = Spec.make("conv_grad_weight", [(2, 4, 7), (2, 6, 4)], ["float32"] * 2,
                     weight_shape=(6, 2, 3), groups=2, stride=2, padding="same")
    assert spec.output_shape() == (6, 2, 3)
    assert spec.operation.terms(spec) == 8
    assert spec.operation.border_zones(spec) == ((0, 0), (0, 0), (1, 1))
    # conv_grad_input, stride 1, k 3, pad 1, wrap: every sample receives 3 taps: K = Og * 3
    spec = Spec.make("conv_grad_input", [(1, 6, 5), (6, 2, 3)], ["float32"] * 2,
                     input_shape=(1, 4, 5), groups=2, padding=1, border="wrap")
    assert spec.operation.terms(spec) == 3 * 3
    # reflect with padding 4 on 3 samples: position j = 0..10 reads 2 1 2 1 0 1 2 1 0 1 2 ...
    # with a 1-tap kernel sample 1 is read by j = 1, 3, 5, 7, 9: K = 5
    spec = Spec.make("conv_grad_input", [(1, 1, 11), (1, 1, 1)], ["float32"] * 2,
                     input_shape=(1, 1, 3), padding=4, border="reflect")
    assert spec.operation.terms(spec) == 5
    # conv_transpose stride 2, k 3: an output reached by taps r = 0 and 2 (q even) or 1: K = 2
    spec = Spec.make("conv_transpose", [(1, 1, 5), (1, 1, 3)], ["float32"] * 2, stride=2)
    assert spec.output_shape() == (1, 1, 11)
    assert spec.operation.terms(spec) == 2
    spec = Spec.make("conv_grad_bias", [(3, 2, 4, 5)], ["float16"])
    assert spec.output_shape() == (2,) and spec.operation.terms(spec) == 3 * 20


@pytest.mark.parametrize("op", LAYER_OPS)
def test_small_cases_whole_and_layers_pointwise(op):
    small = suite("small", op)
    assert small and all(c.spec.operation.work(c.spec) <= WHOLE_LIMIT for c in small)
    sampled = [case for name in ("layers", "seed", "quick") for case in suite(name, op)
               if case.spec.operation.work(case.spec) > WHOLE_LIMIT]
    for case in sampled:
        # every sampled case has a pointwise oracle (none raises NotImplementedError)
        arrays = case.arrays()
        index = tuple(n - 1 for n in case.spec.output_shape())
        assert np.isfinite(case.spec.operation.oracle_at(case.spec, arrays, index))


@pytest.mark.parametrize("op", LAYER_OPS)
def test_oracle_at_equals_oracle_on_small_cases(op):
    for case in suite("small", op)[::9]:
        spec, arrays = case.spec, case.arrays()
        whole = spec.operation.oracle(spec, arrays)
        for index in [(0,) * whole.ndim, tuple(n - 1 for n in whole.shape)]:
            assert spec.operation.oracle_at(spec, arrays, index) == whole[index], case.id


def test_small_suite_covers_what_it_should():
    cases = suite("small", "conv")
    kw = [c.spec.kwargs for c in cases]
    assert {k["border"] for k in kw} == {"constant", "edge", "symmetric", "reflect", "wrap"}
    assert {len(c.spec.shapes[0]) - 2 for c in cases} == {1, 2, 3}
    assert {c.spec.dtype for c in cases} == {"float16", "float32", "float64"}
    assert any(c.strided for c in cases) and any(len(c.spec.shapes) == 3 for c in cases)
    assert any(k["padding"] == "same" and k["stride"] == 3 for k in kw)
    assert any(k["groups"] == c.spec.shapes[0][1] > 1 for k, c in zip(kw, cases))   # depthwise
    wide = [c for c in cases if any(lo > n or hi > n for n, (lo, hi) in
                                    zip(c.spec.shapes[0][2:], c.spec.operation.layer(c.spec).pads))]
    assert {c.spec.kwargs["border"] for c in wide} == {"constant", "edge", "symmetric", "reflect",
                                                       "wrap"}


# ---------------------------------------------------------------------------------------
# Every shipped conv-family candidate passes verification on the small cases of its ops
# ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def small_report(op):
    return verify_candidates(registry.candidates(op), suite("small", op))


CANDIDATE_OPS = [(name, op) for op in LAYER_OPS for name in registry.CANDIDATES[op]]


@pytest.mark.parametrize("name, op", CANDIDATE_OPS, ids=[f"{op}-{n}" for n, op in CANDIDATE_OPS])
def test_candidate_passes_small_cases(name, op):
    rows = [r for r in small_report(op).rows if r.candidate == name]
    assert rows
    if all(r.status == "unavailable" for r in rows):
        pytest.skip(rows[0].detail)
    bad = [f"{r.case}: {r.status} {r.detail}" for r in rows if r.status in ("FAIL", "error")]
    assert not bad, "\n".join(bad[:10])
    assert sum(r.status == "pass" for r in rows) >= 6
    for r in rows:
        if r.status == "unsupported":
            assert r.detail, r.case


def test_per_channel_opencv_refuses_what_filter2d_cannot_do():
    candidate = registry.get("conv", "per_channel_opencv")
    for kwargs, shapes, match in [
        (dict(stride=2), [(1, 2, 8, 8), (2, 2, 3, 3)], "stride"),
        (dict(dilation=(1, 2)), [(1, 2, 8, 8), (2, 2, 3, 3)], "dilation"),
        ({}, [(1, 2, 8), (2, 2, 3)], "1 spatial axis"),
        ({}, [(1, 2, 4, 4, 4), (2, 2, 3, 3, 3)], "3 spatial axes"),
        (dict(padding=1), [(1, 512, 7, 7), (512, 512, 3, 3)], "plane filterings"),
    ]:
        spec = Spec.make("conv", shapes, ["float32"] * 2, **kwargs)
        assert match in candidate.module.supports(spec)
    spec = Spec.make("conv", [(1, 4, 8, 8), (4, 1, 3, 3)], ["float32"] * 2, groups=4, padding=9,
                     border="symmetric")
    assert candidate.module.supports(spec) is None


# ---------------------------------------------------------------------------------------
# tapgemm_numpy: every product path against torch's weight gradient; the default choice's
# shape rule for conv_grad_weight (tapgemm_numpy or im2col_numpy first)
# ---------------------------------------------------------------------------------------

TAPGEMM_CASES = {
    # (N, C, O, spatial, kernel, dilation, groups, border): Cg <= Og and Cg > Og run
    # matrix-vector products, 8 x 8 one GEMM per tap
    "cg1-og5-2d-reflect": (2, 1, 5, (9, 7), (3, 2), 1, 1, "reflect"),
    "cg6-og2-2d-wrap-groups": (3, 12, 4, (6, 8), (3, 3), (2, 1), 2, "wrap"),
    "gemm-8x8-2d-edge": (2, 8, 8, (7, 6), (2, 3), 1, 1, "edge"),
    "1d-dilated-symmetric": (2, 2, 3, (19,), (4,), 3, 1, "symmetric"),
    "3d-constant-groups": (1, 4, 4, (5, 4, 6), (3, 2, 3), 1, 4, "constant"),
}


@pytest.mark.parametrize("case", TAPGEMM_CASES.values(), ids=TAPGEMM_CASES.keys())
def test_tapgemm_matches_torch_weight_gradient(case):
    from candidates.conv.tapgemm_numpy import conv_grad_weight as tapgemm

    batch, channels, outputs, spatial, kernel, dilation, groups, border = case
    rng = np.random.default_rng(91)
    x = rng.standard_normal((batch, channels) + spatial)
    weight_shape = (outputs, channels // groups) + kernel
    pads = layer_padding(spatial, kernel, "same", 1, dilation)
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple(pads), mode=border,
                **({"constant_values": 0.75} if border == "constant" else {}))
    out = conv_output_shape(spatial, kernel, pads, (1,) * len(spatial),
                            np.broadcast_to(dilation, (len(spatial),)))
    dy = rng.standard_normal((batch, outputs) + tuple(out))
    expected = TORCH_GRAD[len(spatial)][1](tt(xp), weight_shape, tt(dy), dilation=dilation,
                                           groups=groups).numpy()
    # channels-last x and a reversed-stride dy: the planes are copied from any layout
    x_last = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)
    dy_flipped = np.flip(np.flip(dy, -1).copy(), -1)
    got = tapgemm(x_last, dy_flipped, weight_shape, padding="same", dilation=dilation,
                  groups=groups, border=border, cval=0.75)
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-11)
    got32 = tapgemm(x.astype(np.float32), dy.astype(np.float32), weight_shape, padding="same",
                    dilation=dilation, groups=groups, border=border, cval=0.75)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, expected, rtol=1e-4, atol=1e-4)


def test_tapgemm_refuses_stride_and_bfloat16():
    module = registry.get("conv_grad_weight", "tapgemm_numpy").module
    spec = Spec.make("conv_grad_weight", [(1, 2, 9, 9), (1, 3, 4, 7)], ["float32"] * 2,
                     weight_shape=(3, 2, 3, 3), stride=(2, 1))
    assert "stride" in module.supports(spec)
    spec = Spec.make("conv_grad_weight", [(1, 2, 9, 9), (1, 3, 7, 7)], ["bfloat16"] * 2,
                     weight_shape=(3, 2, 3, 3))
    assert "bfloat16" in module.supports(spec)
    with pytest.raises(ValueError, match="stride"):
        module.conv_grad_weight(np.ones((1, 2, 9, 9)), np.ones((1, 3, 4, 7)), (3, 2, 3, 3),
                                stride=(2, 1))


@pytest.mark.parametrize("x_shape, weight_shape, kwargs, first", [
    ((1, 1, 500, 500), (1, 1, 3, 3), dict(padding=1), "tapgemm_numpy"),    # seed-grad-kernel
    ((8, 1, 28, 28), (8, 1, 3, 3), dict(padding=1), "tapgemm_numpy"),      # 1 -> 8
    ((8, 1, 28, 28), (16, 1, 3, 3), dict(padding=1), "im2col_numpy"),      # 1 -> 16
    ((2, 64, 16, 16), (1, 64, 3, 3), {}, "tapgemm_numpy"),                  # 64 -> 1
    ((2, 3, 12, 12), (3, 1, 3, 3), dict(groups=3), "tapgemm_numpy"),        # depthwise RGB
    ((8, 3, 28, 28), (3, 3, 3, 3), dict(padding=1), "conv_torch"),          # 3 -> 3
    ((2, 2, 28, 28), (32, 1, 3, 3), dict(padding=1, groups=2), "conv_torch"),  # 2 groups
    ((2, 32, 12, 12), (32, 1, 3, 3), dict(groups=32), "conv_torch"),        # 32 groups
    ((1, 1, 500, 500), (1, 1, 3, 3), dict(padding=1, stride=2), "conv_torch"),
])
def test_grad_weight_default_choice_rule(x_shape, weight_shape, kwargs, first):
    layer = refimpl.conv.validate(x_shape, weight_shape, **kwargs)
    spec = Spec.make("conv_grad_weight", [x_shape, layer.out_shape], ["float64"] * 2,
                     weight_shape=weight_shape, **kwargs)
    names, why = convbench.choose.ranked(spec, "numpy")
    assert names[0] == first
    assert (f"{first} first" in why) == (first != "conv_torch")
    assert convbench.choose.ranked(spec, "torch")[0][0] == "cudnn_autotune_torch"  # GPU tensors


def test_grad_weight_default_with_nan_falls_back_to_the_oracles_placement():
    # tapgemm_numpy declares NONFINITE False: a NaN in x goes to the next candidate, whose
    # result holds NaN exactly at the taps that read it (torch's gradient as the check)
    x = np.random.default_rng(92).standard_normal((1, 1, 12, 10))
    x[0, 0, 0, 9] = np.nan              # xp[1, 10]: read by the taps r <= 1, s >= 1 only
    dy = np.ones((1, 1, 12, 10))
    got = convbench.conv_grad_weight(x, dy, (1, 1, 3, 3), padding=1)
    expected = torch.nn.grad.conv2d_weight(tt(x), (1, 1, 3, 3), tt(dy), padding=1).numpy()
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got).any() and not np.isnan(got).all()
    finite = np.isfinite(expected)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-12)


# ---------------------------------------------------------------------------------------
# The planted-bug catalogue: each buggy function is rejected by convbench.verify; a correct
# function built on torch directly passes
# ---------------------------------------------------------------------------------------

def _pads(x, w, padding, stride, dilation):
    n = x.ndim - 2
    return layer_padding(x.shape[2:], w.shape[2:], padding, stride, dilation), n


def _np_pad(x, pads, border, cval, extra=0):
    width = ((0, 0), (0, 0)) + tuple((lo, hi) for lo, hi in pads)
    kw = {"constant_values": cval} if border == "constant" else {}
    xp = np.pad(np.asarray(x, dtype=np.float64), width, mode=border, **kw)
    if extra:   # one more zero at the high end of every spatial axis
        xp = np.pad(xp, ((0, 0), (0, 0)) + ((0, extra),) * (x.ndim - 2))
    return xp


def torch_conv(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
               border="constant", cval=0.0):
    """A correct user function: numpy.pad by the border (our names are numpy's), then torch."""
    pads, n = _pads(x, w, padding, stride, dilation)
    y = TORCH_CONV[n](tt(_np_pad(x, pads, border, cval)), tt(w),
                      None if bias is None else tt(bias), stride=stride, dilation=dilation,
                      groups=groups)
    return y.numpy().astype(np.result_type(x, w))


def bug_stride_phase(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                     border="constant", cval=0.0):
    """Strided outputs sampled from position 1 instead of 0 (right whenever stride is 1)."""
    pads, n = _pads(x, w, padding, stride, dilation)
    strides = np.broadcast_to(stride, (n,))
    xp = _np_pad(x, pads, border, cval, extra=1)
    start = tuple(slice(1 if s > 1 else 0, xp.shape[2 + a] - (0 if s > 1 else 1))
                  for a, s in enumerate(strides))
    y = TORCH_CONV[n](tt(xp[(slice(None), slice(None)) + start]), tt(w),
                      None if bias is None else tt(bias), stride=stride, dilation=dilation,
                      groups=groups)
    return y.numpy()


def bug_dilation_ignored(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                         border="constant", cval=0.0):
    pads, n = _pads(x, w, padding, stride, dilation)
    out = conv_output_shape(x.shape[2:], w.shape[2:], pads, stride, dilation)
    y = TORCH_CONV[n](tt(_np_pad(x, pads, border, cval)), tt(w),
                      None if bias is None else tt(bias), stride=stride, groups=groups)
    return y.numpy()[(slice(None), slice(None)) + tuple(slice(0, m) for m in out)]


def bug_groups_mixed(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                     border="constant", cval=0.0):
    """Output channel o reads group o % groups instead of o // (O/groups)."""
    pads, n = _pads(x, w, padding, stride, dilation)
    xp = tt(_np_pad(x, pads, border, cval))
    cg = w.shape[1]
    ys = []
    for o in range(w.shape[0]):
        g = o % groups
        ys.append(TORCH_CONV[n](xp[:, g * cg:(g + 1) * cg], tt(w[o:o + 1]),
                                None if bias is None else tt(bias[o:o + 1]), stride=stride,
                                dilation=dilation))
    return torch.cat(ys, 1).numpy()


def bug_bias_dropped(x, w, bias=None, **kw):
    return torch_conv(x, w, None, **kw)


def bug_weight_transposed(x, w, bias=None, **kw):
    """The two last kernel axes swapped (only where the kernel is square, so shapes match)."""
    if w.ndim >= 4 and w.shape[-1] == w.shape[-2]:
        w = np.swapaxes(w, -1, -2)
    return torch_conv(x, w, bias, **kw)


def bug_last_row_zeroed(x, w, bias=None, **kw):
    y = torch_conv(x, w, bias, **kw)
    y[:, :, -1] = 0
    return y


def bug_float16_accumulation(x, w, bias=None, *, stride=1, padding=0, dilation=1, groups=1,
                             border="constant", cval=0.0):
    """Every partial sum rounded to the result type (float16 summed in float16)."""
    y = torch_conv(x, w, None, stride=stride, padding=padding, dilation=dilation, groups=groups,
                   border=border, cval=cval)
    if y.dtype != np.float16:
        return y if bias is None else y + bias.reshape((-1,) + (1,) * (x.ndim - 2))
    pads, n = _pads(x, w, padding, stride, dilation)
    xp = _np_pad(x, pads, border, cval).astype(np.float16)
    acc = np.zeros(y.shape, dtype=np.float16)
    cg, og = w.shape[1], w.shape[0] // groups
    for o in range(w.shape[0]):
        g = o // og
        for c in range(cg):
            for r in np.ndindex(*w.shape[2:]):
                window = xp[(slice(None), g * cg + c) + tuple(
                    slice(ra * d, ra * d + s * (m - 1) + 1, s) for ra, d, s, m in zip(
                        r, np.broadcast_to(dilation, (n,)), np.broadcast_to(stride, (n,)),
                        y.shape[2:]))]
                acc[:, o] = acc[:, o] + w[(o, c) + r] * window
    if bias is not None:
        acc += bias.reshape((-1,) + (1,) * n).astype(np.float16)
    return acc


def torch_grad_input(dy, w, input_shape, *, stride=1, padding=0, dilation=1, groups=1,
                     border="constant", cval=0.0, fold=True):
    """Autograd through numpy.pad's index map (any border, any width)."""
    n = len(input_shape) - 2
    pads = layer_padding(input_shape[2:], w.shape[2:], padding, stride, dilation)
    xt = torch.zeros(tuple(input_shape), dtype=torch.float64, requires_grad=True)
    xp = xt
    for axis, (size, width) in enumerate(zip(input_shape[2:], pads)):
        mode = border if fold else "constant"
        if mode == "constant":
            xp = F.pad(xp, [0, 0] * (n - 1 - axis) + list(width) + [0, 0] * axis)
        else:
            xp = xp.index_select(2 + axis, torch.from_numpy(np.pad(np.arange(size), width, mode)))
    TORCH_CONV[n](xp, tt(w), stride=stride, dilation=dilation, groups=groups).backward(tt(dy))
    return xt.grad.numpy().astype(np.result_type(dy, w))


def bug_border_not_folded(dy, w, input_shape, **kw):
    return torch_grad_input(dy, w, input_shape, fold=False, **kw)


def bug_grad_weight_cval_ignored(x, dy, weight_shape, *, stride=1, padding=0, dilation=1,
                                 groups=1, border="constant", cval=0.0):
    n = x.ndim - 2
    pads = layer_padding(x.shape[2:], weight_shape[2:], padding, stride, dilation)
    xp = _np_pad(x, pads, border, 0.0)
    return TORCH_GRAD[n][1](tt(xp), weight_shape, tt(dy), stride=stride, dilation=dilation,
                            groups=groups).numpy()


def bug_transpose_kernel_not_flipped(x, w, bias=None, *, stride=1, padding=0, output_padding=0,
                                     dilation=1, groups=1):
    wf = np.ascontiguousarray(np.flip(w, tuple(range(2, w.ndim))))
    return TORCH_CONV_T[x.ndim - 2](tt(x), tt(wf), None if bias is None else tt(bias),
                                    stride=stride, padding=padding,
                                    output_padding=output_padding, dilation=dilation,
                                    groups=groups).numpy()


def bug_transpose_bias_dropped(x, w, bias=None, **kw):
    return TORCH_CONV_T[x.ndim - 2](tt(x), tt(w), **kw).numpy()


def bug_grad_bias_first_image_only(dy):
    return np.asarray(dy, dtype=np.float64)[0].sum(axis=tuple(range(1, dy.ndim - 1)))


def _kw(c, key, default):
    value = c.spec.kwargs.get(key, default)
    return value != default


# (bug, op, which small cases it is run on: those where the bug shows, to keep this fast)
PLANTED = {
    "stride-phase": (bug_stride_phase, "conv", lambda c: _kw(c, "stride", 1)),
    "dilation-ignored": (bug_dilation_ignored, "conv", lambda c: _kw(c, "dilation", 1)),
    "groups-mixed": (bug_groups_mixed, "conv", lambda c: _kw(c, "groups", 1)),
    "bias-dropped": (bug_bias_dropped, "conv", lambda c: len(c.spec.shapes) == 3),
    "weight-transposed": (bug_weight_transposed, "conv", lambda c: len(c.spec.shapes[0]) == 4),
    "last-row-zeroed": (bug_last_row_zeroed, "conv", lambda c: c.spec.kwargs["border"] == "edge"),
    "float16-accumulation": (bug_float16_accumulation, "conv",
                             lambda c: c.spec.dtype == "float16"),
    "border-not-folded": (bug_border_not_folded, "conv_grad_input",
                          lambda c: c.spec.kwargs["border"] in ("reflect", "wrap")),
    "grad-weight-cval-ignored": (bug_grad_weight_cval_ignored, "conv_grad_weight",
                                 lambda c: c.spec.kwargs["cval"] != 0),
    "transpose-kernel-not-flipped": (bug_transpose_kernel_not_flipped, "conv_transpose",
                                     lambda c: True),
    "transpose-bias-dropped": (bug_transpose_bias_dropped, "conv_transpose",
                               lambda c: len(c.spec.shapes) == 3),
    "grad-bias-first-image-only": (bug_grad_bias_first_image_only, "conv_grad_bias",
                                   lambda c: True),
}


def _in_result_dtype(fn):
    """The bug's output in the dtype a correct function returns, so that only the planted
    bug (not a wrong dtype or shape) can make verification fail."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        return np.asarray(fn(*args, **kwargs)).astype(np.result_type(*arrays))
    return wrapped


@pytest.mark.parametrize("bug, op, relevant", PLANTED.values(), ids=PLANTED.keys())
def test_planted_bug_is_rejected(bug, op, relevant):
    cases = [c for c in suite("small", op) if relevant(c)][:8]
    assert cases
    report = convbench.verify(op, _in_result_dtype(bug), cases)
    assert not report.passed
    wrong_values = [r for r in report.rows if r.status == "FAIL"
                    and not r.detail.startswith(("dtype", "shape"))]
    assert wrong_values, str(report)
    assert not [r for r in report.rows if r.status == "error"], str(report)


def test_correct_torch_user_function_passes():
    report = convbench.verify("conv", torch_conv)          # every small case of conv
    assert report.passed, str(report)
    assert all(r.status == "pass" for r in report.rows)
    folded = [c for c in suite("small", "conv_grad_input") if c.spec.kwargs["border"] != "constant"]
    report = convbench.verify("conv_grad_input", torch_grad_input, folded[::2])
    assert report.passed, str(report)
    assert all(r.status == "pass" for r in report.rows)


# ---------------------------------------------------------------------------------------
# Bad input through the public API: clear errors naming the argument, before any work
# ---------------------------------------------------------------------------------------

HUGE_X = np.broadcast_to(np.float32(1.0), (1, 4, 10 ** 5, 10 ** 5))   # no memory behind it
W4 = np.ones((6, 4, 3, 3), np.float32)

API_BAD = [
    ("channels", lambda: convbench.conv(HUGE_X, np.ones((6, 3, 3, 3), np.float32)), ValueError,
     r"w.shape\[1\] \* groups must equal the channels C of x"),
    ("groups-divide", lambda: convbench.conv(HUGE_X, np.ones((6, 1, 3, 3), np.float32),
                                             groups=3), ValueError,
     "groups=3 must divide the channels C=4"),
    ("groups-per-group", lambda: convbench.conv(HUGE_X, W4, groups=2), ValueError,
     r"w.shape\[1\] \* groups"),
    ("stride-zero", lambda: convbench.conv(HUGE_X, W4, stride=0), ValueError, "stride"),
    ("stride-negative", lambda: convbench.conv(HUGE_X, W4, stride=(1, -2)), ValueError,
     "stride"),
    ("dilation-zero", lambda: convbench.conv(HUGE_X, W4, dilation=0), ValueError, "dilation"),
    ("output-padding", lambda: convbench.conv_transpose(HUGE_X, np.ones((4, 2, 3, 3),
                                                                        np.float32),
                                                        stride=2, output_padding=2),
     ValueError, "output_padding"),
    ("border", lambda: convbench.conv(HUGE_X, W4, border="reflect101"), ValueError,
     "unknown border 'reflect101'"),
    ("x-empty", lambda: convbench.conv(np.ones((1, 4, 0, 5), np.float32), W4), ValueError,
     "x must not be empty"),
    ("w-empty", lambda: convbench.conv(HUGE_X, np.ones((6, 4, 0, 3), np.float32)), ValueError,
     "w must not be empty"),
    ("dy-empty", lambda: convbench.conv_grad_bias(np.ones((2, 0, 3), np.float32)), ValueError,
     "dy must not be empty"),
    ("x-integer", lambda: convbench.conv(np.broadcast_to(np.int32(1), HUGE_X.shape), W4),
     TypeError, "x has dtype int32"),
    ("w-integer", lambda: convbench.conv(HUGE_X, W4.astype(np.uint8)), TypeError,
     "w has dtype uint8"),
    ("bias-shape", lambda: convbench.conv(HUGE_X, W4, np.ones(5, np.float32)), ValueError,
     r"bias must have shape \(O,\)"),
    ("dy-shape", lambda: convbench.conv_grad_input(np.ones((1, 6, 5, 5), np.float32), W4,
                                                   (1, 4, 10 ** 5, 10 ** 5)), ValueError,
     "dy must have the shape of conv's output"),
    ("weight-shape", lambda: convbench.conv_grad_weight(HUGE_X, np.ones((1, 6, 5, 5),
                                                                        np.float32), (6, 4)),
     ValueError, "weight_shape must have the rank of x"),
    ("kernel-too-large", lambda: convbench.conv(np.ones((1, 4, 2, 2), np.float32), W4),
     ValueError, "kernel w"),
    ("unknown-keyword", lambda: apply("conv", (HUGE_X, W4, None), ("x", "w", "bias"),
                                      dict(mode="same")), TypeError, "mode"),
]


@pytest.mark.parametrize("name, call, error, match", API_BAD, ids=[b[0] for b in API_BAD])
def test_api_rejects_before_any_work(name, call, error, match):
    # the broadcast inputs would need 40 GB and hours: only validation can run here
    with pytest.raises(error, match=match):
        call()


def test_api_conv_matches_torch_and_returns_the_callers_arrays():
    rng = np.random.default_rng(91)
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=2,
                   padding=1, groups=2).numpy()
    for algorithm in (None, "im2col_numpy", "conv_torch"):
        y = convbench.conv(x, w, b, stride=2, padding=1, groups=2, algorithm=algorithm)
        assert isinstance(y, np.ndarray) and y.dtype == np.float32
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    yt = convbench.conv(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=2,
                        padding=1, groups=2)
    assert isinstance(yt, torch.Tensor)
    np.testing.assert_allclose(yt.numpy(), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_cli_bench_layers_times_every_candidate_against_torch():
    import subprocess
    import sys
    import time

    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "convbench.cli", "bench", "--suite", "layers",
                           "--op", "conv", "--no-save"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert time.perf_counter() - started < 300
    rows = [line for line in done.stdout.splitlines() if "-conv-x1x" in line]
    names = [case.id for case in suite("layers", "conv")]
    for name in names:
        mine = [line for line in rows if line.startswith(name + " ")]
        assert {c for c in ("im2col_numpy", "conv_torch", "per_channel_opencv")
                if any(f" {c} " in line for line in mine)} == {"im2col_numpy", "conv_torch",
                                                                 "per_channel_opencv"}, name
        torch_row = next(line for line in mine if " conv_torch " in line)
        assert "pass" in torch_row and torch_row.rstrip().endswith("x"), torch_row
        for line in mine:   # timed rows carry a median and a ratio; the rest say why not
            assert ("pass" in line and line.rstrip().endswith("x")) or "unsupported" in line
