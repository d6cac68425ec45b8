"""convbench.torch_ops: the ops as torch operators with autograd.

Gradients are checked by finite differences (torch.autograd.gradcheck, float64) and
against torch's own autograd where torch has the op; the operators by
torch.library.opcheck (schema, fake implementation, autograd registration, AOT dispatch).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import convbench  # noqa: E402
from convbench import api, torch_ops as T  # noqa: E402

BORDERS = ("constant", "edge", "symmetric", "reflect", "wrap")
# torch's names for the borders F.pad has (symmetric has none)
TORCH_PAD = {"constant": "constant", "edge": "replicate", "reflect": "reflect",
             "wrap": "circular"}
F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # on this 2-core machine shared with other jobs, torch's OpenMP barriers wait for a
    # descheduled thread: a tiny F.pad took 16 ms with 2 threads, 9 us with one
    with convbench.threads(1):
        yield


def rand(*shape, dtype=F64, grad=True, seed=0):
    g = torch.Generator().manual_seed(seed + sum(shape))
    t = torch.randn(*shape, generator=g, dtype=dtype)
    return t.requires_grad_(grad) if dtype.is_floating_point else t


def gradcheck(fn, inputs, fast=True):
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=fast)


def torch_pads(pairs):
    """Per-axis (lo, hi) pairs as F.pad's flat list, last axis first."""
    return [v for lo, hi in reversed(pairs) for v in (lo, hi)]


# ---------------------------------------------------------------------------------------
# The seed-grad-kernel case: the kernel's gradient of sum(correlate(x, w))
# ---------------------------------------------------------------------------------------

def test_seed_grad_kernel_equals_the_sum_of_shifted_windows():
    x = rand(500, 500, grad=False)
    w = rand(3, 3)
    convbench.correlate(x, w).sum().backward()
    # y[i] = sum_j w[j] xp[i + j] with xp = x zero-padded by 1: d sum(y) / d w[j] is the
    # sum of the 500x500 window of xp that starts at j
    xp = np.pad(x.numpy(), 1)
    hand = np.array([[xp[a:a + 500, b:b + 500].sum() for b in range(3)] for a in range(3)])
    np.testing.assert_allclose(w.grad.numpy(), hand, rtol=1e-12, atol=1e-9)
    assert x.grad is None


# ---------------------------------------------------------------------------------------
# The public functions keep the graph
# ---------------------------------------------------------------------------------------

def test_public_correlate_keeps_the_graph_and_matches_torch():
    x, w = rand(9, 8), rand(3, 3)
    y = convbench.correlate(x, w)
    assert y.requires_grad and "convbench" in type(y.grad_fn).__name__
    gy = rand(9, 8, grad=False, seed=1)
    got = torch.autograd.grad(y, (x, w), gy)
    # correlate 'same' with an odd kernel and zero border is torch's conv2d, padding 1
    ref = F.conv2d(x[None, None], w[None, None], padding=1)[0, 0]
    want = torch.autograd.grad(ref, (x, w), gy)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("algorithm", [None, "im2col_numpy", "winograd_numpy", "conv_torch"])
def test_public_conv_keeps_the_graph_with_every_algorithm(algorithm):
    x, w, b = rand(2, 3, 8, 7), rand(4, 3, 3, 3), rand(4)
    y = convbench.conv(x, w, b, padding=1, algorithm=algorithm)
    assert y.requires_grad
    gy = rand(*y.shape, grad=False, seed=2)
    got = torch.autograd.grad(y, (x, w, b), gy)
    ref = F.conv2d(x, w, b, padding=1)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    for a, c in zip(got, torch.autograd.grad(ref, (x, w, b), gy)):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)


def test_public_functions_route_every_op_with_grad():
    x = rand(1, 2, 6, 6)
    calls = [convbench.convolve(rand(6, 6), rand(2, 3)), convbench.gaussian(rand(6, 6), 1.0),
             convbench.conv_transpose(x, rand(2, 3, 3, 3)),
             convbench.conv_grad_input(rand(1, 3, 4, 4), rand(3, 2, 3, 3), (1, 2, 6, 6)),
             convbench.conv_grad_weight(x, rand(1, 3, 4, 4), (3, 2, 3, 3)),
             convbench.conv_grad_bias(rand(1, 3, 4, 4)),
             convbench.max_pool(x, 2), convbench.avg_pool(x, 2), convbench.lp_pool(x, 2, 2),
             api.apply("max_pool_grad", (rand(1, 2, 3, 3), x), ("dy", "x"), {"kernel_size": 2}),
             api.apply("avg_pool_grad", (rand(1, 2, 3, 3),), ("dy",),
                       {"input_shape": (1, 2, 6, 6), "kernel_size": 2}),
             api.apply("lp_pool_grad", (rand(1, 2, 3, 3), x), ("dy", "x"),
                       {"norm_type": 2, "kernel_size": 2})]
    assert all(y.requires_grad for y in calls)


def test_plan_call_keeps_the_graph():
    x, w = rand(1, 2, 6, 6), rand(3, 2, 3, 3)
    p = convbench.plan("conv", x.detach(), w.detach(), padding="same", stride=2)
    y = p(x, w)
    assert y.requires_grad and y.shape == (1, 3, 3, 3)
    ref = F.conv2d(F.pad(x, (0, 1, 0, 1)), w, stride=2)
    for a, b in zip(torch.autograd.grad(y.sum(), (x, w)), torch.autograd.grad(ref.sum(), (x, w))):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_without_grad_the_public_functions_do_not_route():
    x, w = rand(6, 6), rand(3, 3)
    with torch.no_grad():
        assert not convbench.correlate(x, w).requires_grad
        # an integer result has no gradient, and none is asked for here
        assert convbench.correlate(x, w, out_dtype="int16").dtype == torch.int16


# ---------------------------------------------------------------------------------------
# Clear errors where no gradient exists
# ---------------------------------------------------------------------------------------

def test_integer_out_dtype_with_grad_is_refused():
    with pytest.raises(ValueError, match="out_dtype=uint8 rounds to integers"):
        convbench.correlate(rand(6, 6), rand(3, 3), out_dtype=np.uint8)
    with pytest.raises(ValueError, match="no gradient"):
        T.gaussian(rand(6, 6), 1.0, out_dtype=torch.int32)


def test_image_form_beyond_three_axes_with_grad_is_refused():
    with pytest.raises(ValueError, match="1-3 axes"):
        convbench.correlate(rand(3, 3, 3, 3), rand(1, 1, 1, 2))
    with pytest.raises(ValueError, match="1-3 axes"):
        T.gaussian(rand(3, 3, 3, 3), 1.0, border="reflect")
    # a constant border's gradient is a Gaussian itself: any rank
    x = rand(3, 3, 3, 3)
    gradcheck(lambda x: T.gaussian(x, 0.7), (x,))


def test_complex_with_grad_is_refused():
    x = torch.randn(6, 6, dtype=torch.complex128, requires_grad=True)
    with pytest.raises(ValueError, match="complex"):
        convbench.correlate(x, torch.ones(3, 3, dtype=torch.complex128))


def test_op_without_operator_is_refused():
    x = rand(1, 2, 6, 6)
    with pytest.raises(ValueError, match="conv_relu has no torch operator"):
        api.apply("conv_relu", (x, rand(3, 2, 3, 3), None), ("x", "w", "bias"), {})


def test_backward_through_max_pool_grad_raises():
    x = rand(1, 1, 4, 4)
    (g,) = torch.autograd.grad(T.max_pool(x, 2).sum(), x, create_graph=True)
    assert g.requires_grad
    with pytest.raises(RuntimeError, match="no autograd formula"):
        g.sum().backward()


def test_torch_ops_take_tensors_only():
    with pytest.raises(TypeError, match="takes torch tensors"):
        T.conv(np.ones((1, 1, 3, 3)), torch.ones(1, 1, 1, 1))


def test_bad_keywords_are_refused_before_the_operator():
    x, w = rand(1, 2, 6, 6), rand(3, 2, 3, 3)
    with pytest.raises(ValueError, match="unknown border"):
        T.conv(x, w, border="mirrored")
    with pytest.raises(ValueError, match="padding"):
        T.correlate(rand(6, 6), rand(3, 3), padding="circular")
    with pytest.raises(ValueError, match="origin"):
        T.correlate(rand(6, 6), rand(3, 3), origin=2)
    with pytest.raises(ValueError, match="3 to 5 dimensions"):
        T.max_pool(rand(6, 6), 2)
    with pytest.raises(TypeError, match="cval"):
        T.conv(x, w, cval="0")


def test_remembered_keywords_still_refuse_other_types():
    # 2.0 == 2 and True == 1 in Python: a keyword remembered for 2 must not let them by
    x, w = rand(1, 2, 6, 6, grad=False), rand(3, 2, 3, 3, grad=False)
    T.conv(x, w, stride=2, padding=(1, 1))
    for kw in (dict(stride=2.0, padding=(1, 1)), dict(stride=True, padding=(1, 1)),
               dict(stride=2, padding=(1.0, 1))):
        with pytest.raises(TypeError, match="stride|padding"):
            T.conv(x, w, **kw)
    # lists take the path that is not remembered, with the same result
    torch.testing.assert_close(T.conv(x, w, stride=[2, 2], padding=[1, 1]),
                               F.conv2d(x, w, stride=2, padding=1))


def test_the_layer_operators_geometry_list():
    # [stride (2), per-side padding (lo, hi per axis), dilation (2), groups]
    x, w, b = rand(2, 4, 7, 6, grad=False), rand(6, 2, 3, 2, grad=False), rand(6, grad=False)
    geometry = [2, 1, 0, 1, 1, 2, 1, 2, 2]
    y = torch.ops.convbench.conv(x, w, b, geometry, "constant", 0.0, None)
    want = F.conv2d(F.pad(x, (1, 2, 0, 1)), w, b, stride=(2, 1), dilation=(1, 2), groups=2)
    torch.testing.assert_close(y, want)
    dy = rand(*want.shape, grad=False)
    gx = torch.ops.convbench.conv_grad_input(dy, w, list(x.shape), geometry, "constant", 0.0,
                                             None)
    gw = torch.ops.convbench.conv_grad_weight(x, dy, list(w.shape), geometry, "constant", 0.0,
                                              None)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    ref = F.conv2d(F.pad(xr, (1, 2, 0, 1)), wr, b, stride=(2, 1), dilation=(1, 2), groups=2)
    want_gx, want_gw = torch.autograd.grad(ref, (xr, wr), dy)
    torch.testing.assert_close(gx, want_gx)
    torch.testing.assert_close(gw, want_gw)


def test_conv_torch_geometry_of_lists_and_tuples_agree():
    from candidates.conv import conv_torch

    x, w = rand(1, 2, 8, 8, grad=False), rand(3, 2, 3, 3, grad=False)
    # 'same' with stride 2 on 8: 4 outputs, total padding 1, on the high side
    want = F.conv2d(F.pad(x, (0, 1, 0, 1), mode="reflect"), w, stride=2)
    for kw in (dict(stride=(2, 2), padding="same"), dict(stride=[2, 2], padding="same"),
               dict(stride=2, padding=((0, 1), (0, 1))),
               dict(stride=2, padding=[[0, 1], [0, 1]])):
        torch.testing.assert_close(conv_torch.conv(x, w, border="reflect", **kw), want)


# ---------------------------------------------------------------------------------------
# gradcheck: image form
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["correlate", "convolve"])
@pytest.mark.parametrize("border", BORDERS)
def test_image_gradients_every_border(op, border):
    x, w = rand(7, 6), rand(3, 4)       # an even kernel axis
    fn = getattr(T, op)
    gradcheck(lambda x, w: fn(x, w, border=border, cval=0.7, origin=(1, -1)), (x, w))


@pytest.mark.parametrize("op", ["correlate", "convolve"])
@pytest.mark.parametrize("padding", ["valid", "full"])
def test_image_gradients_valid_and_full(op, padding):
    x, w = rand(6, 5), rand(2, 3)
    fn = getattr(T, op)
    gradcheck(lambda x, w: fn(x, w, padding=padding, border="symmetric"), (x, w))


@pytest.mark.parametrize("shape,kernel", [((9,), (4,)), ((4, 5, 3), (3, 2, 3))])
def test_image_gradients_one_and_three_axes(shape, kernel):
    x, w = rand(*shape), rand(*kernel)
    gradcheck(lambda x, w: T.convolve(x, w, border="wrap"), (x, w))
    gradcheck(lambda x, w: T.correlate(x, w, border="reflect", cval=2.0), (x, w))


def test_image_gradients_full_jacobian():
    x, w = rand(5, 6), rand(3, 2)
    gradcheck(lambda x, w: T.correlate(x, w, border="edge"), (x, w), fast=False)


def test_kernel_gradient_with_an_integer_image():
    x = torch.arange(36, dtype=torch.uint8).reshape(6, 6)
    w = rand(3, 3, dtype=torch.float32)
    y = convbench.correlate(x, w, border="reflect")
    assert y.dtype == torch.float32
    y.sum().backward()
    # sum over i of xp[i + j]: the reflect-padded image's 6x6 windows
    xp = np.pad(x.numpy().astype(np.float64), 1, mode="reflect")
    hand = np.array([[xp[a:a + 6, b:b + 6].sum() for b in range(3)] for a in range(3)])
    np.testing.assert_allclose(w.grad.numpy(), hand, rtol=1e-6)


def test_mixed_dtypes_give_gradients_in_each_inputs_dtype():
    x, w = rand(6, 6, dtype=torch.float16), rand(3, 3, dtype=torch.float32)
    y = T.correlate(x, w)
    assert y.dtype == torch.float32
    gx, gw = torch.autograd.grad(y.sum(), (x, w))
    assert gx.dtype == torch.float16 and gw.dtype == torch.float32


@pytest.mark.parametrize("border", BORDERS)
def test_gaussian_gradient_every_border(border):
    x = rand(9, 8)
    gradcheck(lambda x: T.gaussian(x, (1.0, 0.6), border=border, cval=0.3), (x,))


def test_gaussian_gradient_is_the_adjoint():
    # <dy, G x> = <G^T dy, x> with G^T from the backward, on a 3-axis image, wrap border
    x, dy = rand(5, 6, 4), rand(5, 6, 4, grad=False, seed=3)
    y = T.gaussian(x, 0.8, border="wrap")
    (gx,) = torch.autograd.grad(y, x, dy)
    torch.testing.assert_close((dy * y).sum(), (gx * x).sum(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------
# gradcheck: layer form
# ---------------------------------------------------------------------------------------

CONV_MIXES = [  # (spatial, kernel, stride, padding, dilation, groups)
    ((7, 6), (3, 2), (2, 1), "same", (1, 2), 2),
    ((6, 7), (2, 3), 1, ((2, 0), (1, 2)), 1, 1),
    ((8,), (3,), 3, 2, 2, 2),
    ((4, 3, 5), (2, 2, 3), (1, 2, 1), "same", 1, 1),
]


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("mix", range(len(CONV_MIXES)))
def test_conv_gradients(border, mix):
    spatial, kernel, stride, padding, dilation, groups = CONV_MIXES[mix]
    x, w, b = rand(2, 4, *spatial), rand(4, 4 // groups, *kernel), rand(4)
    gradcheck(lambda x, w, b: T.conv(x, w, b, stride=stride, padding=padding,
                                     dilation=dilation, groups=groups, border=border,
                                     cval=0.5), (x, w, b))


@pytest.mark.parametrize("border,cval", [("constant", 0.0), ("constant", -1.5), ("reflect", 0.0),
                                         ("wrap", 0.0)])
def test_conv_double_backward(border, cval):
    x, w, b = rand(1, 2, 5, 6), rand(2, 1, 3, 2), rand(2)
    assert torch.autograd.gradgradcheck(
        lambda x, w, b: T.conv(x, w, b, stride=(1, 2), padding="same", groups=2, border=border,
                               cval=cval), (x, w, b), fast_mode=True)


def test_conv_double_backward_full_jacobian():
    x, w = rand(1, 1, 4, 5), rand(2, 1, 2, 3)
    assert torch.autograd.gradgradcheck(
        lambda x, w: T.conv(x, w, padding=1, border="symmetric", cval=0.0), (x, w))


def test_correlate_double_backward():
    x, w = rand(5, 6), rand(3, 2)
    assert torch.autograd.gradgradcheck(lambda x, w: T.correlate(x, w, border="edge", cval=1.0),
                                        (x, w), fast_mode=True)


@pytest.mark.parametrize("kw", [dict(stride=2, padding=1, output_padding=1, dilation=(1, 2),
                                     groups=2),
                                dict(stride=1, padding=0, output_padding=1, dilation=2),
                                dict(stride=(3, 1), padding=(2, 0), output_padding=(2, 0))])
def test_conv_transpose_gradients(kw):
    # w is (C, O/groups, *k): O = 3 * groups
    x, w, b = rand(2, 4, 4, 3), rand(4, 3, 3, 2), rand(3 * kw.get("groups", 1))
    fn = lambda x, w, b: T.conv_transpose(x, w, b, **kw)   # noqa: E731
    gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b), fast_mode=True)


def test_conv_gradient_ops_are_differentiable():
    dy, w, x = rand(1, 4, 3, 3), rand(4, 1, 3, 3), rand(1, 2, 6, 5)
    kw = dict(stride=2, padding="same", groups=2, border="reflect")
    gradcheck(lambda dy, w: T.conv_grad_input(dy, w, (1, 2, 6, 5), **kw), (dy, w))
    gradcheck(lambda x, dy: T.conv_grad_weight(x, dy, (4, 1, 3, 3), cval=0.3, **kw), (x, dy))
    gradcheck(lambda dy: T.conv_grad_bias(dy), (dy,))


POOLS = [  # (op, args, kwargs)
    ("max_pool", (3,), dict(stride=2, padding=1, dilation=1, ceil_mode=True)),
    ("max_pool", ((2, 3),), dict(stride=1, dilation=(2, 1))),
    ("avg_pool", (3,), dict(stride=2, padding=1, ceil_mode=True, count_include_pad=False)),
    ("avg_pool", ((2, 3),), dict(stride=(1, 2), divisor_override=4)),
    ("lp_pool", (2, 3), dict(stride=2, ceil_mode=True)),
    ("lp_pool", (1.5, (2, 2)), dict()),
    ("lp_pool", (3, 2), dict(stride=1)),
]


@pytest.mark.parametrize("case", range(len(POOLS)))
def test_pool_gradients(case):
    op, args, kw = POOLS[case]
    # distinct values (max: no ties), positive for lp (the p-th root of a negative sum is NaN)
    x = (torch.randperm(2 * 3 * 9 * 8, generator=torch.Generator().manual_seed(case))
         .reshape(2, 3, 9, 8).to(F64) / 10 + 0.5).requires_grad_()
    fn = getattr(T, op)
    gradcheck(lambda x: fn(x, *args, **kw), (x,))


def test_pool_gradients_one_and_three_axes():
    x1 = rand(2, 2, 9)
    gradcheck(lambda x: T.max_pool(x, 3, 2, 1), (x1,))
    x3 = (torch.rand(1, 2, 4, 5, 4, dtype=F64) + 0.1).requires_grad_()
    gradcheck(lambda x: T.avg_pool(x, 2, 1, 1), (x3,))
    gradcheck(lambda x: T.lp_pool(x, 2, (2, 2, 1)), (x3,))


def test_avg_pool_double_backward():
    x = rand(1, 2, 5, 6)
    assert torch.autograd.gradgradcheck(lambda x: T.avg_pool(x, 2, 1, 1, True, False), (x,),
                                        fast_mode=True)


# ---------------------------------------------------------------------------------------
# Gradients equal torch's own
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("border", ["constant", "edge", "reflect", "wrap"])
@pytest.mark.parametrize("nsp", [1, 2, 3])
def test_conv_gradients_equal_torch(border, nsp):
    spatial, kernel = (6, 5, 4)[:nsp], (3, 2, 3)[:nsp]
    x, w, b = rand(2, 4, *spatial), rand(6, 2, *kernel), rand(6)
    stride, dilation = (2, 1, 1)[:nsp], (1, 2, 1)[:nsp]
    pads = ((1, 2), (2, 1), (1, 1))[:nsp]
    y = T.conv(x, w, b, stride=stride, padding=pads, dilation=dilation, groups=2,
               border=border, cval=0.0)
    conv = (F.conv1d, F.conv2d, F.conv3d)[nsp - 1]
    ref = conv(F.pad(x, torch_pads(pads), mode=TORCH_PAD[border]), w, b, stride=stride,
               dilation=dilation, groups=2)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    gy = rand(*y.shape, grad=False, seed=4)
    for a, c in zip(torch.autograd.grad(y, (x, w, b), gy),
                    torch.autograd.grad(ref, (x, w, b), gy)):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)


def test_conv_second_derivatives_equal_torch():
    x, w = rand(1, 2, 5, 5), rand(3, 2, 3, 3)

    def hessian_vector(conv):
        (gx, gw) = torch.autograd.grad((conv(x, w) ** 2).sum(), (x, w), create_graph=True)
        return torch.autograd.grad((gx ** 2).sum() + (gw * w).sum(), (x, w))

    got = hessian_vector(lambda x, w: T.conv(x, w, padding=1, border="reflect"))
    want = hessian_vector(lambda x, w: F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), w))
    for a, c in zip(got, want):
        torch.testing.assert_close(a, c, rtol=1e-11, atol=1e-11)


def test_conv_transpose_gradients_equal_torch():
    x, w, b = rand(2, 4, 5, 4), rand(4, 3, 3, 2), rand(6)
    kw = dict(stride=2, padding=1, output_padding=(1, 0), dilation=(1, 2), groups=2)
    y = T.conv_transpose(x, w, b, **kw)
    ref = F.conv_transpose2d(x, w, b, **kw)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    gy = rand(*y.shape, grad=False, seed=5)
    for a, c in zip(torch.autograd.grad(y, (x, w, b), gy), torch.autograd.grad(ref, (x, w, b), gy)):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)


def test_pool_gradients_equal_torch():
    x = rand(2, 3, 9, 8)
    gy = None
    for ours, theirs in [
            (lambda x: T.max_pool(x, 3, 2, 1, 1, True), lambda x: F.max_pool2d(x, 3, 2, 1, 1, True)),
            (lambda x: T.avg_pool(x, 3, 2, 1, True, False),
             lambda x: F.avg_pool2d(x, 3, 2, 1, True, False)),
            (lambda x: T.lp_pool(x.abs(), 2, 3, 2), lambda x: F.lp_pool2d(x.abs(), 2, 3, 2))]:
        y, ref = ours(x), theirs(x)
        torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
        gy = rand(*y.shape, grad=False, seed=6)
        torch.testing.assert_close(torch.autograd.grad(y, x, gy)[0],
                                   torch.autograd.grad(ref, x, gy)[0], rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------
# batch_norm
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 6)])
def test_batch_norm_equals_torch_with_gradients_and_running_statistics(training, shape):
    x, w, b = rand(*shape), rand(3), rand(3)
    rm, rv = rand(3, grad=False, seed=7), torch.rand(3, dtype=F64) + 0.5
    rm_torch, rv_torch = rm.clone(), rv.clone()
    y = T.batch_norm(x, rm, rv, w, b, training, 0.2, 1e-4)
    ref = F.batch_norm(x, rm_torch, rv_torch, w, b, training, 0.2, 1e-4)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    # updated in place in training (unbiased variance), untouched in eval, as torch does
    torch.testing.assert_close(rm, rm_torch, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rv, rv_torch, rtol=1e-12, atol=1e-12)
    assert not rm.requires_grad and not rv.requires_grad
    gy = rand(*shape, grad=False, seed=8)
    for a, c in zip(torch.autograd.grad(y, (x, w, b), gy), torch.autograd.grad(ref, (x, w, b), gy)):
        torch.testing.assert_close(a, c, rtol=1e-11, atol=1e-11)
    gradcheck(lambda x, w, b: T.batch_norm(x, rm.clone(), rv.clone(), w, b, training, 0.2,
                                           1e-4), (x, w, b))


def test_public_batch_norm_keeps_the_graph():
    x, w, b = rand(4, 3, 5), rand(3), rand(3)
    rm, rv = torch.zeros(3, dtype=F64), torch.ones(3, dtype=F64)
    y = convbench.batch_norm(x, rm, rv, w, b, training=True)
    assert y.requires_grad and not rm.requires_grad
    torch.testing.assert_close(rm, 0.1 * x.detach().mean(dim=(0, 2)), rtol=1e-12, atol=1e-12)
    ref = F.batch_norm(x, None, None, w, b, True)
    for a, c in zip(torch.autograd.grad(y.sum(), (x, w, b)), torch.autograd.grad(ref.sum(), (x, w, b))):
        torch.testing.assert_close(a, c, rtol=1e-11, atol=1e-11)
    # without running statistics or affine parameters
    assert T.batch_norm(x, None, None, training=True).requires_grad


def test_batch_norm_running_statistics_requiring_grad_are_refused():
    with pytest.raises(ValueError, match="running_mean requires grad"):
        T.batch_norm(rand(4, 3), rand(3), torch.ones(3, dtype=F64))


# ---------------------------------------------------------------------------------------
# Half floats: float16 (and bfloat16 where the op's candidates take it)
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_float_conv_gradients_in_the_same_dtype_as_torch(dtype):
    x, w, b = (rand(2, 3, 6, 6, dtype=dtype), rand(4, 3, 3, 3, dtype=dtype),
               rand(4, dtype=dtype))
    try:
        y = T.conv(x, w, b, padding=1)
    except TypeError as exc:
        if "bfloat16" in str(exc):
            pytest.skip(f"the layer form refuses bfloat16 here: {exc}")
        raise
    assert y.dtype == dtype
    got = torch.autograd.grad(y.float().sum(), (x, w, b))
    ref = F.conv2d(x.float(), w.float(), b.float(), padding=1)
    want = torch.autograd.grad(ref.sum(), (x, w, b))
    for a, c in zip(got, want):
        assert a.dtype == dtype
        # one rounding of a float32 sum to the half type
        torch.testing.assert_close(a.float(), c.float(), rtol=2 ** -7, atol=1e-2)
    for fn in (lambda x: T.max_pool(x, 2), lambda x: T.avg_pool(x, 2)):
        (g,) = torch.autograd.grad(fn(x).float().sum(), x)
        assert g.dtype == dtype


# ---------------------------------------------------------------------------------------
# The operators: opcheck (schema, fake, autograd registration, AOT dispatch)
# ---------------------------------------------------------------------------------------

def _layouts(x):
    """x contiguous, channels_last (4-D) and permuted (non-contiguous, same values)."""
    layouts = [x]
    if x.ndim == 4:
        layouts.append(x.detach().to(memory_format=torch.channels_last).requires_grad_())
    perm = list(range(x.ndim))[::-1]
    layouts.append(x.detach().permute(*perm).contiguous().permute(*perm).requires_grad_())
    return layouts


def _opcheck_cases():
    """name -> (operator, the array whose layouts vary, its arguments given that array)."""
    f32 = torch.float32
    x, w, b = rand(2, 4, 7, 6, dtype=f32), rand(6, 2, 3, 2, dtype=f32), rand(6, dtype=f32)
    im, k = rand(9, 8, dtype=f32), rand(3, 4, dtype=f32)
    ops = torch.ops.convbench
    # stride, per-side padding, dilation, groups as one list; border, cval
    geometry = ([2, 1, 0, 1, 1, 1, 1, 2, 2], "reflect", 0.0)
    dy = rand(2, 6, 3, 6, dtype=f32)                                     # conv's output
    max_dy = rand(*T.max_pool(x, (3, 2), (2, 1), 1, 1, True).shape, dtype=f32)
    avg_dy = rand(*T.avg_pool(x, (3, 2), 2, (1, 0), True).shape, dtype=f32)
    lp_dy = rand(*T.lp_pool(x, 2, 2, (2, 1), True).shape, dtype=f32)
    wt = rand(4, 3, 3, 2, dtype=f32)
    rm, rv = rand(4, dtype=f32, grad=False), torch.rand(4) + 0.5
    return {
        "correlate": (ops.correlate, im, lambda x: (x, k, "wrap", 0.0, "same", [1, 0], None,
                                                    None, "elementwise")),
        "convolve": (ops.convolve, im, lambda x: (x, k, "constant", 1.5, "full", [0, 0],
                                                  "float64", None, "elementwise")),
        "gaussian": (ops.gaussian, im, lambda x: (x, [1.0, 0.5], "symmetric", 0.0, 4.0, None,
                                                  None, "elementwise")),
        "conv": (ops.conv, x, lambda x: (x, w, b) + geometry + (None,)),
        "conv_grad_input": (ops.conv_grad_input, dy,
                            lambda dy: (dy, w, [2, 4, 7, 6]) + geometry + (None,)),
        "conv_grad_weight": (ops.conv_grad_weight, x,
                             lambda x: (x, dy, [6, 2, 3, 2]) + geometry + (None,)),
        "conv_grad_bias": (ops.conv_grad_bias, dy, lambda dy: (dy, None)),
        "conv_transpose": (ops.conv_transpose, x, lambda x: (x, wt, None, [2, 1], [1, 0],
                                                             [1, 0], [1, 2], 2, None)),
        "max_pool": (ops.max_pool, x, lambda x: (x, [3, 2], [2, 1], [1, 1], [1, 1], True, None)),
        "max_pool_grad": (ops.max_pool_grad, x, lambda x: (max_dy, x, [3, 2], [2, 1], [1, 1],
                                                           [1, 1], True, None)),
        "avg_pool": (ops.avg_pool, x, lambda x: (x, [3, 2], [2, 2], [1, 0], True, False, None,
                                                 None)),
        "avg_pool_grad": (ops.avg_pool_grad, avg_dy,
                          lambda dy: (dy, [2, 4, 7, 6], [3, 2], [2, 2], [1, 0], True, False, 3,
                                      None)),
        "lp_pool": (ops.lp_pool, x, lambda x: (x.abs(), 2.0, [2, 2], [2, 1], True, None)),
        "lp_pool_grad": (ops.lp_pool_grad, x, lambda x: (lp_dy, x.abs(), 2.0, [2, 2], [2, 1],
                                                         True, None)),
        "batch_norm": (ops.batch_norm, x, lambda x: (x, rm, rv, b[:4], None, True, 0.1, 1e-5,
                                                     None)),
        "batch_norm_eval": (ops.batch_norm, x, lambda x: (x, rm, rv, None, b[:4], False, 0.1,
                                                          1e-5, None)),
        "batch_norm_grad": (ops.batch_norm_grad, x, lambda x: (x * 2, x, rm, rv, b[:4], True,
                                                               1e-5, None)),
    }


OPCHECK = list(_opcheck_cases())
NO_GRADIENT = ("max_pool_grad", "lp_pool_grad", "batch_norm_grad")


# the default run checks these in every layout, the others contiguous (all: -m slow)
LAYOUT_CHECKED = ("correlate", "conv", "conv_grad_weight", "max_pool", "batch_norm")


@pytest.mark.parametrize("name", OPCHECK)
def test_opcheck(name):
    _opcheck(name, every_layout=name in LAYOUT_CHECKED)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in OPCHECK if n not in LAYOUT_CHECKED])
def test_opcheck_every_layout(name):
    _opcheck(name, every_layout=True)


def _opcheck(name, every_layout):
    op, x, args = _opcheck_cases()[name]
    for layout in _layouts(x) if every_layout else [x]:
        arguments = args(layout)
        if name in NO_GRADIENT:     # opcheck would backprop through them: no formula, by design
            arguments = tuple(a.detach() if isinstance(a, torch.Tensor) else a
                              for a in arguments)
        torch.library.opcheck(op.default, arguments)


def test_fake_implementation_on_meta_tensors():
    x, w = torch.empty(2, 4, 9, 7, device="meta"), torch.empty(6, 2, 3, 3, device="meta")
    y = T.conv(x, w, stride=2, padding="same", groups=2, border="wrap")
    assert y.device.type == "meta" and y.shape == (2, 6, 5, 4) and y.dtype == torch.float32
    y = T.correlate(torch.empty(9, 7, dtype=torch.uint8, device="meta"),
                    torch.empty(3, 4, device="meta"), padding="full", out_dtype="float64")
    assert y.shape == (11, 10) and y.dtype == torch.float64


# ---------------------------------------------------------------------------------------
# torch.compile
# ---------------------------------------------------------------------------------------

def test_compile_fullgraph_matches_eager():
    x, w, b = rand(2, 4, 9, 8), rand(6, 2, 3, 3), rand(6)
    k = rand(3, 3)

    def net(x, w, b, k, running_mean, running_var):
        y = T.conv(x, w, b, stride=2, padding="same", groups=2, border="reflect")
        y = T.batch_norm(y, running_mean, running_var, training=True)
        y = T.max_pool(torch.relu(y), 2, ceil_mode=True)
        z = T.correlate(x[0, 0], k, border="wrap")
        return T.avg_pool(y, 1).sum() + T.lp_pool(y + 1, 2, 2).sum() + (z ** 2).sum()

    stats = [torch.zeros(6, dtype=F64), torch.ones(6, dtype=F64)]
    compiled_stats = [t.clone() for t in stats]
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    eager, got = net(x, w, b, k, *stats), compiled(x, w, b, k, *compiled_stats)
    torch.testing.assert_close(got, eager, rtol=1e-12, atol=1e-12)
    for a, c in zip(compiled_stats, stats):     # updated in place by the compiled graph too
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)
    for a, c in zip(torch.autograd.grad(got, (x, w, b, k)),
                    torch.autograd.grad(eager, (x, w, b, k))):
        torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_compile_inductor_fullgraph_matches_eager():
    x, w = rand(2, 3, 8, 8, dtype=torch.float32), rand(4, 3, 3, 3, dtype=torch.float32)

    def net(x, w):
        return T.avg_pool(torch.relu(T.conv(x, w, padding=1, border="edge")), 2).sum()

    compiled = torch.compile(net, fullgraph=True)
    torch.testing.assert_close(compiled(x, w), net(x, w))
    torch.testing.assert_close(torch.autograd.grad(compiled(x, w), w)[0],
                               torch.autograd.grad(net(x, w), w)[0])


# ---------------------------------------------------------------------------------------
# Slow: full Jacobians over the wider mixes
# ---------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("mix", range(len(CONV_MIXES)))
def test_conv_gradients_full_jacobian(border, mix):
    spatial, kernel, stride, padding, dilation, groups = CONV_MIXES[mix]
    x, w, b = rand(1, 2, *spatial), rand(2, 2 // groups, *kernel), rand(2)
    fn = lambda x, w, b: T.conv(x, w, b, stride=stride, padding=padding,   # noqa: E731
                                dilation=dilation, groups=groups, border=border, cval=0.5)
    gradcheck(fn, (x, w, b), fast=False)
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


@pytest.mark.slow
@pytest.mark.parametrize("op", ["correlate", "convolve"])
@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("padding,origin", [("same", 0), ("same", (-1, 1)), ("valid", 0),
                                            ("full", 0)])
def test_image_gradients_full_jacobian_every_mix(op, border, padding, origin):
    x, w = rand(5, 4), rand(2, 3)
    fn = getattr(T, op)
    gradcheck(lambda x, w: fn(x, w, border=border, cval=-0.5, padding=padding, origin=origin),
              (x, w), fast=False)


# ---------------------------------------------------------------------------------------
# GPU: the same operators on CUDA tensors (the default choice there: cuDNN through torch)
# ---------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU (torch.cuda.is_available() is False): the "
                                       "operators' CUDA path is not run here")

GPU_CALLS = {
    "correlate": lambda x: T.correlate(x[0, 0], x[0, 1, :3, :3], border="reflect", cval=0.5),
    "gaussian": lambda x: T.gaussian(x[0, 0], 1.0, border="wrap"),
    "conv": lambda x: T.conv(x, x[:, :, :3, :3] * 1.5, stride=2, padding="same",
                             border="symmetric"),
    "conv_transpose": lambda x: T.conv_transpose(x, x[0, :, :3, :2].unsqueeze(1), stride=2,
                                                 padding=1),
    "max_pool": lambda x: T.max_pool(x, 3, 2, 1, ceil_mode=True),
    "avg_pool": lambda x: T.avg_pool(x, 3, 2, 1, count_include_pad=False),
    "lp_pool": lambda x: T.lp_pool(x.abs() + 0.1, 2, 2),
    "batch_norm": lambda x: T.batch_norm(x, None, None, x[0, 0, 0, :4], None, training=True),
}


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", list(GPU_CALLS))
def test_gradients_on_the_gpu_equal_the_cpu_ones(name):
    cpu = rand(2, 4, 9, 8)
    gpu = cpu.detach().cuda().requires_grad_()
    y_cpu, y_gpu = GPU_CALLS[name](cpu), GPU_CALLS[name](gpu)
    assert y_gpu.device.type == "cuda" and y_gpu.requires_grad
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, rtol=1e-10, atol=1e-10)
    gy = rand(*y_cpu.shape, grad=False, seed=9)
    (g_cpu,) = torch.autograd.grad(y_cpu, cpu, gy)
    (g_gpu,) = torch.autograd.grad(y_gpu, gpu, gy.cuda())
    assert g_gpu.device.type == "cuda"
    torch.testing.assert_close(g_gpu.cpu(), g_cpu, rtol=1e-10, atol=1e-10)
