"""convbench.nn against torch.nn: signatures, state_dict keys and initialisation, outputs and
gradients with one state_dict loaded both ways, border= and 'same' with stride against
numpy.pad + torch's conv, BatchNorm's running statistics, GaussianBlur against
scipy.ndimage, bfloat16 within its stated bound, and torch.compile(fullgraph=True).

Every expected value comes from torch.nn, torch.nn.functional, numpy.pad or scipy.ndimage,
never from convbench itself."""
from __future__ import annotations

import copy
import inspect
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

import convbench.nn as cnn  # noqa: E402

ADDED = {"border", "cval", "algorithm"}      # our keyword-only additions
LAYERS = cnn.__all__
TORCH_TWINS = [name for name in LAYERS if name != "GaussianBlur"]


def rand(*shape, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


# ---------------------------------------------------------------------------------------
# Construction: signatures, parameters, buffers, initialisation, repr
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", TORCH_TWINS)
def test_signature_is_torch_nn_plus_keywords(name):
    ours = inspect.signature(getattr(cnn, name)).parameters
    theirs = inspect.signature(getattr(torch.nn, name)).parameters
    shared = [(p.name, p.kind, p.default) for p in ours.values() if p.name not in ADDED]
    assert shared == [(p.name, p.kind, p.default) for p in theirs.values()]
    extra = [p for p in ours.values() if p.name in ADDED]
    assert extra and all(p.kind is p.KEYWORD_ONLY for p in extra)
    assert "algorithm" in ours


CONSTRUCT = [
    ("Conv1d", (3, 4, 3), {}), ("Conv2d", (4, 6, (3, 2)), dict(groups=2, bias=False)),
    ("Conv3d", (2, 3, 2), dict(stride=2, padding=1)),
    ("ConvTranspose1d", (3, 4, 3), {}), ("ConvTranspose2d", (4, 6, 3), dict(groups=2)),
    ("ConvTranspose3d", (2, 3, 2), dict(bias=False)),
    ("BatchNorm1d", (5,), {}), ("BatchNorm2d", (3,), dict(affine=False)),
    ("BatchNorm3d", (2,), dict(track_running_stats=False)),
    ("BatchNorm2d", (3,), dict(bias=False, momentum=None)),
]


@pytest.mark.parametrize("name,args,kwargs", CONSTRUCT, ids=lambda v: str(v))
def test_same_state_dict_keys_shapes_and_initialisation(name, args, kwargs):
    torch.manual_seed(7)
    ours = getattr(cnn, name)(*args, **kwargs)
    torch.manual_seed(7)
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert torch.equal(a[key], b[key]), key       # the same draws from the same seed
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert repr(ours) == repr(theirs)


def test_conv_init_bounds_follow_fan_in():
    # kaiming_uniform_(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)); fan_in = 4 * 3 * 3
    layer = cnn.Conv2d(8, 16, 3, groups=2)
    bound = 1 / math.sqrt(4 * 9)
    for t in (layer.weight, layer.bias):
        assert t.abs().max() <= bound and t.abs().max() > 0.8 * bound


def test_factory_kwargs():
    layer = cnn.Conv2d(2, 3, 3, dtype=torch.float64)
    assert layer.weight.dtype == layer.bias.dtype == torch.float64
    bn = cnn.BatchNorm1d(3, dtype=torch.float64)
    assert bn.running_mean.dtype == torch.float64 and bn.num_batches_tracked.dtype == torch.long


@pytest.mark.parametrize("name,args,kwargs", [
    ("MaxPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True)),
    ("MaxPool1d", (2,), {}), ("AvgPool1d", (3,), dict(padding=1)),
    ("AvgPool3d", ((2, 2, 1),), {}), ("LPPool2d", (2, 3), {}), ("LPPool1d", (1.5, 2, 1), {}),
    ("Conv2d", (2, 4, 3), dict(padding=1, dilation=2, padding_mode="circular")),
    ("ConvTranspose2d", (2, 4, 3), dict(stride=2, output_padding=1)),
])
def test_repr_and_attributes_as_torch(name, args, kwargs):
    ours, theirs = getattr(cnn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(ours) == repr(theirs)
    for attr in ("kernel_size", "stride", "padding", "dilation", "ceil_mode",
                 "count_include_pad", "norm_type", "output_padding", "padding_mode", "groups"):
        if hasattr(theirs, attr):
            assert getattr(ours, attr) == getattr(theirs, attr), attr


def test_repr_shows_the_additions():
    layer = cnn.Conv2d(1, 2, 3, padding="same", stride=2, border="symmetric",
                       algorithm="conv_torch")
    assert repr(layer) == ("Conv2d(1, 2, kernel_size=(3, 3), stride=(2, 2), padding=same, "
                           "border=symmetric, algorithm='conv_torch')")
    assert "cval=2.0" in repr(cnn.Conv1d(1, 1, 3, padding=1, cval=2))


# ---------------------------------------------------------------------------------------
# Bad arguments: refused at construction, naming the argument
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("build,match", [
    (lambda: cnn.MaxPool2d(2, return_indices=True), "return_indices"),
    (lambda: cnn.Conv2d(3, 4, 3, groups=2), "divisible by groups"),
    (lambda: cnn.Conv2d(2, 4, 3, padding="full"), "padding"),
    (lambda: cnn.Conv2d(2, 4, 3, padding=-1), "padding"),
    (lambda: cnn.Conv2d(2, 4, 3, padding_mode="mirror"), "padding_mode"),
    (lambda: cnn.Conv2d(2, 4, 3, padding_mode="reflect", border="symmetric"), "padding_mode"),
    (lambda: cnn.Conv2d(2, 4, 3, border="sideways"), "border"),
    (lambda: cnn.Conv2d(2, 4, 0), "kernel_size"),
    (lambda: cnn.Conv1d(2, 4, 3, stride=0), "stride"),
    (lambda: cnn.ConvTranspose2d(2, 4, 3, padding_mode="reflect"), "zeros"),
    (lambda: cnn.ConvTranspose2d(2, 4, 3, padding="same"), "padding"),
    (lambda: cnn.GaussianBlur(-1.0), "sigma"),
    (lambda: cnn.GaussianBlur((1.0, math.nan)), "sigma"),
])
def test_bad_arguments_refused_at_construction(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_padding_mode_and_border_agreeing_or_alone():
    assert cnn.Conv2d(1, 1, 3, padding_mode="replicate").border == "edge"
    assert cnn.Conv2d(1, 1, 3, padding_mode="circular", border="wrap").border == "wrap"
    assert cnn.Conv2d(1, 1, 3, padding_mode="reflect", border="mirror").border == "reflect"
    assert cnn.Conv2d(1, 1, 3, border="nearest").border == "edge"
    assert cnn.Conv2d(1, 1, 3).border == "constant"


# ---------------------------------------------------------------------------------------
# Forward and gradients against torch.nn, one state_dict loaded both ways
# ---------------------------------------------------------------------------------------

LAYER_CASES = [
    ("Conv1d", (3, 4, 3), dict(padding=1), (2, 3, 9)),
    ("Conv1d", (3, 2, 4), dict(padding="valid", stride=3), (1, 3, 10)),
    ("Conv1d", (4, 6, 3), dict(stride=2, dilation=2, groups=2, padding=2,
                               padding_mode="circular"), (2, 4, 11)),
    ("Conv2d", (3, 4, 3), {}, (2, 3, 7, 6)),
    ("Conv2d", (4, 4, (3, 2)), dict(stride=(2, 1), padding=(1, 0), groups=4, bias=False),
     (1, 4, 8, 7)),
    ("Conv2d", (2, 3, 3), dict(padding="same", padding_mode="reflect"), (2, 2, 6, 6)),
    ("Conv2d", (2, 3, 4), dict(padding="same", dilation=2), (1, 2, 9, 9)),
    ("Conv2d", (2, 3, 3), dict(padding=2, padding_mode="replicate"), (1, 2, 5, 6)),
    ("Conv3d", (2, 3, 2), dict(padding=1, stride=(1, 2, 1)), (1, 2, 4, 5, 4)),
    ("ConvTranspose1d", (3, 4, 3), dict(stride=2, padding=1, output_padding=1), (2, 3, 5)),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1, groups=2),
     (1, 4, 4, 5)),
    ("ConvTranspose2d", (2, 3, (2, 3)), dict(stride=(2, 1), dilation=2, bias=False),
     (2, 2, 3, 4)),
    ("ConvTranspose3d", (2, 2, 2), dict(stride=2), (1, 2, 3, 3, 2)),
    ("MaxPool1d", (3, 2, 1), {}, (2, 3, 10)),
    ("MaxPool2d", (3,), dict(stride=2, padding=1, ceil_mode=True), (2, 2, 9, 8)),
    ("MaxPool2d", ((2, 3),), dict(dilation=(2, 1)), (1, 2, 7, 8)),
    ("MaxPool3d", (2,), {}, (1, 2, 4, 4, 5)),
    ("AvgPool1d", (3, 2, 1), dict(count_include_pad=False), (2, 3, 10)),
    ("AvgPool2d", (3, 2, 1), dict(ceil_mode=True, divisor_override=5), (1, 2, 8, 9)),
    ("AvgPool2d", (2,), {}, (2, 3, 6, 6)),
    ("AvgPool3d", ((2, 2, 1),), dict(padding=(1, 0, 0)), (1, 2, 4, 4, 3)),
    ("LPPool1d", (2, 3, 2), {}, (2, 3, 9)),
    ("LPPool2d", (3, 2), {}, (1, 2, 6, 7)),
    ("LPPool2d", (1.5, (2, 3)), dict(stride=(1, 2)), (1, 2, 5, 7)),
    ("LPPool3d", (2, 2), {}, (1, 2, 4, 4, 4)),
    ("BatchNorm1d", (3,), {}, (4, 3)),
    ("BatchNorm1d", (3,), dict(momentum=None), (4, 3, 5)),
    ("BatchNorm2d", (3,), {}, (4, 3, 5, 5)),
    ("BatchNorm2d", (3,), dict(affine=False), (2, 3, 4, 4)),
    ("BatchNorm3d", (2,), dict(track_running_stats=False), (3, 2, 3, 3, 3)),
]


def _randomised(module, seed):
    """``module`` with every floating parameter and buffer redrawn (variances positive), so
    that a state_dict round trip carries information."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5
                        if "var" in name else torch.randn(t.shape, generator=g, dtype=t.dtype))
    return module


def _run(module, x, dy):
    """(output, x.grad, {parameter name: grad}) of sum(module(x) * dy)."""
    x = x.clone().requires_grad_(True)
    y = module(x)
    (y * dy).sum().backward()
    return y.detach(), x.grad, {n: p.grad for n, p in module.named_parameters()}


@pytest.mark.parametrize("name,args,kwargs,shape", LAYER_CASES, ids=lambda v: str(v))
def test_forward_and_gradients_as_torch_nn(name, args, kwargs, shape):
    theirs = _randomised(getattr(torch.nn, name)(*args, **kwargs).double(), 3)
    ours = getattr(cnn, name)(*args, **kwargs).double()
    ours.load_state_dict(theirs.state_dict())            # torch -> convbench
    x = rand(*shape, seed=1)
    if name.startswith("LPPool"):
        x = x.abs() + 0.1       # odd and fractional p of negative sums are NaN in both
    with torch.no_grad():
        dy = rand(*getattr(torch.nn, name)(*args, **kwargs).double()(x).shape, seed=2)
    for training in (True, False):
        ours.train(training)
        theirs.train(training)
        y, gx, gp = _run(ours, x, dy)
        y_t, gx_t, gp_t = _run(theirs, x, dy)
        torch.testing.assert_close(y, y_t)
        torch.testing.assert_close(gx, gx_t)
        assert gp.keys() == gp_t.keys()
        for key in gp:
            torch.testing.assert_close(gp[key], gp_t[key], msg=f"{key}.grad")
        for key, value in theirs.state_dict().items():        # running statistics
            torch.testing.assert_close(ours.state_dict()[key], value, msg=key)
        ours.zero_grad()
        theirs.zero_grad()
    back = getattr(torch.nn, name)(*args, **kwargs).double()
    back.load_state_dict(ours.state_dict())               # convbench -> torch
    for key, value in ours.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key


@pytest.mark.parametrize("name,shape", [("Conv2d", (3, 7, 6)), ("MaxPool2d", (2, 9, 8)),
                                        ("AvgPool1d", (3, 10)), ("ConvTranspose1d", (3, 5))])
def test_unbatched_input_as_torch(name, shape):
    args = {"Conv2d": (3, 4, 3), "MaxPool2d": (3, 2), "AvgPool1d": (3,),
            "ConvTranspose1d": (3, 2, 3)}[name]
    theirs = getattr(torch.nn, name)(*args).double()
    ours = getattr(cnn, name)(*args).double()
    ours.load_state_dict(theirs.state_dict())
    x = rand(*shape)
    torch.testing.assert_close(ours(x), theirs(x))


def test_conv_transpose_output_size_as_torch():
    theirs = torch.nn.ConvTranspose2d(2, 3, 3, stride=3, padding=1).double()
    ours = cnn.ConvTranspose2d(2, 3, 3, stride=3, padding=1).double()
    ours.load_state_dict(theirs.state_dict())
    x = rand(1, 2, 4, 5)
    for size in ([10, 13], [1, 3, 11, 14], [12, 15]):
        torch.testing.assert_close(ours(x, output_size=size), theirs(x, output_size=size))
    with pytest.raises(ValueError, match="output_size"):
        ours(x, output_size=[13, 13])


# ---------------------------------------------------------------------------------------
# border= and 'same' with stride: against numpy.pad + torch's conv (no padding)
# ---------------------------------------------------------------------------------------

def _same_pads(n, k, s, d):
    """TF/JAX SAME: out = ceil(n / s), total = max((out-1)*s + (k-1)*d + 1 - n, 0),
    the odd sample on the high side."""
    out = -(-n // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def _padded(x, pads, border, cval):
    """x extended by numpy.pad's rule, differentiable: a gather of the source indices that
    numpy.pad puts at each position (constant: F.pad with the value)."""
    if border == "constant":
        flat = [v for lo_hi in reversed(pads) for v in lo_hi]
        return F.pad(x, flat, value=cval)
    for axis, (lo, hi) in enumerate(pads, start=2):
        index = np.pad(np.arange(x.shape[axis]), (lo, hi), mode=border)
        x = x.index_select(axis, torch.from_numpy(index))
    return x


BORDER_CASES = [   # (spatial shape, kernel, stride, dilation, padding, border, cval)
    ((11,), (3,), (2,), (1,), "same", "symmetric", 0.0),
    ((10,), (4,), (3,), (1,), "same", "wrap", 0.0),
    ((7, 8), (3, 3), (2, 2), (1, 1), "same", "constant", 1.5),
    ((7, 8), (3, 2), (2, 3), (1, 1), "same", "edge", 0.0),
    ((6, 9), (3, 3), (1, 2), (2, 1), "same", "reflect", 0.0),
    ((5, 6), (3, 3), (1, 1), (1, 1), (4, 2), "symmetric", 0.0),     # wider than the input
    ((5, 6), (2, 3), (1, 1), (1, 1), ((0, 3), (2, 1)), "wrap", 0.0),  # per-side pairs
    ((4, 5, 6), (3, 2, 3), (2, 1, 3), (1, 1, 1), "same", "reflect", 0.0),
]


@pytest.mark.parametrize("spatial,kernel,stride,dilation,padding,border,cval", BORDER_CASES,
                         ids=lambda v: str(v))
def test_border_and_same_with_stride_against_numpy_pad(spatial, kernel, stride, dilation,
                                                       padding, border, cval):
    n = len(spatial)
    layer = getattr(cnn, f"Conv{n}d")(2, 3, kernel, stride=stride, padding=padding,
                                      dilation=dilation, border=border, cval=cval).double()
    x = rand(2, 2, *spatial, seed=4)
    if padding == "same":
        pads = [_same_pads(*a) for a in zip(spatial, kernel, stride, dilation)]
    elif isinstance(padding[0], tuple):
        pads = list(padding)
    else:
        pads = [(p, p) for p in padding]
    w, b = layer.weight.detach().clone(), layer.bias.detach().clone()
    xr = x.clone().requires_grad_(True)
    wr, br = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    expected = getattr(F, f"conv{n}d")(_padded(xr, pads, border, cval), wr, br, stride=stride,
                                       dilation=dilation)
    if padding == "same":
        assert expected.shape[2:] == tuple(-(-a // s) for a, s in zip(spatial, stride))
    y, gx, gp = _run(layer, x, dy := rand(*expected.shape, seed=5))
    (expected * dy).sum().backward()
    torch.testing.assert_close(y, expected.detach())
    torch.testing.assert_close(gx, xr.grad)
    torch.testing.assert_close(gp["weight"], wr.grad)
    torch.testing.assert_close(gp["bias"], br.grad)


# ---------------------------------------------------------------------------------------
# BatchNorm: running statistics over several steps, the modes and options
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{}, dict(momentum=None), dict(momentum=0.3, eps=1e-3),
                                    dict(affine=False), dict(bias=False),
                                    dict(track_running_stats=False)], ids=str)
def test_batchnorm_steps_as_torch(kwargs):
    theirs = torch.nn.BatchNorm2d(3, **kwargs).double()
    ours = cnn.BatchNorm2d(3, **kwargs).double()
    for step in range(4):
        for module in (ours, theirs):
            module.train(step != 2)          # an eval step in between changes nothing
        x = rand(5, 3, 4, 4, seed=10 + step) * (step + 1) + step
        torch.testing.assert_close(ours(x), theirs(x))
        for key, value in theirs.state_dict().items():
            torch.testing.assert_close(ours.state_dict()[key], value, msg=key)
    if theirs.track_running_stats:
        assert int(ours.num_batches_tracked) == 3


def test_batchnorm_momentum_none_is_the_cumulative_average():
    # with momentum=None the running mean after k batches is the mean of the k batch means;
    # the running variance the mean of the k unbiased batch variances
    bn = cnn.BatchNorm1d(2, momentum=None).double()
    batches = [rand(6, 2, seed=s) * (s + 1) + s for s in range(3)]
    for x in batches:
        bn(x)
    torch.testing.assert_close(bn.running_mean, torch.stack([x.mean(0) for x in batches]).mean(0))
    torch.testing.assert_close(bn.running_var,
                               torch.stack([x.var(0, unbiased=True) for x in batches]).mean(0))


def test_batchnorm_old_state_dict_without_num_batches_tracked_loads():
    state = torch.nn.BatchNorm2d(3).state_dict()
    del state["num_batches_tracked"]
    state._metadata = {"": {"version": 1}}
    bn = cnn.BatchNorm2d(3)
    bn.num_batches_tracked.fill_(5)
    bn.load_state_dict(state)
    assert int(bn.num_batches_tracked) == 0


def test_batchnorm_rank_refused():
    with pytest.raises(ValueError, match="4D"):
        cnn.BatchNorm2d(3)(rand(2, 3, 4))


# ---------------------------------------------------------------------------------------
# GaussianBlur: against scipy.ndimage.gaussian_filter, per channel
# ---------------------------------------------------------------------------------------

SCIPY_MODE = {"constant": "constant", "edge": "nearest", "symmetric": "reflect",
              "reflect": "mirror", "wrap": "wrap"}


@pytest.mark.parametrize("sigma,border,shape", [
    (1.0, "constant", (2, 3, 9, 8)), ((0.8, 2.0), "symmetric", (1, 2, 12, 10)),
    (1.5, "wrap", (2, 2, 11)), ((1.0, 0.0, 1.2), "reflect", (1, 1, 6, 5, 7)),
    (0.7, "edge", (1, 2, 5, 6))], ids=str)
def test_gaussian_blur_against_scipy(sigma, border, shape):
    ndimage = pytest.importorskip("scipy.ndimage")
    x = rand(*shape, seed=6)
    nsp = len(shape) - 2
    sig = sigma if isinstance(sigma, tuple) else (sigma,) * nsp
    layer = cnn.GaussianBlur(sigma, border=border, cval=0.0, truncate=3.0)
    expected = ndimage.gaussian_filter(x.numpy(), (0, 0) + sig, mode=SCIPY_MODE[border],
                                       truncate=3.0)
    xr = x.clone().requires_grad_(True)
    y = layer(xr)
    torch.testing.assert_close(y.detach(), torch.from_numpy(expected))
    if border == "constant":
        # the blur is linear with a symmetric kernel: its adjoint is the same blur, zero border
        dy = rand(*shape, seed=7)
        (y * dy).sum().backward()
        grad = ndimage.gaussian_filter(dy.numpy(), (0, 0) + sig, mode="constant", truncate=3.0)
        torch.testing.assert_close(xr.grad, torch.from_numpy(grad))


def test_gaussian_blur_sigma_count_checked():
    with pytest.raises(ValueError, match="spatial"):
        cnn.GaussianBlur((1.0, 2.0))(rand(1, 1, 5, 5, 5))


# ---------------------------------------------------------------------------------------
# torch.compile(fullgraph=True) of a model of convbench.nn layers
# ---------------------------------------------------------------------------------------

def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        cnn.Conv2d(1, 4, 3, padding="same", stride=2, border="reflect"), torch.nn.ReLU(),
        cnn.BatchNorm2d(4), cnn.MaxPool2d(2, ceil_mode=True),
        cnn.ConvTranspose2d(4, 3, 2, stride=2), cnn.AvgPool2d(3, 1, 1),
        cnn.LPPool2d(2, 2), cnn.GaussianBlur(0.8),
        torch.nn.Flatten(), torch.nn.Linear(27, 5)).double()


def _compiled_matches_eager(backend):
    eager = _model()
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model, fullgraph=True, backend=backend)
    for step in range(2):
        x = rand(2, 1, 12, 12, seed=20 + step)
        y_e, gx_e, gp_e = _run(eager, x, torch.ones(2, 5, dtype=torch.float64))
        y_c, gx_c, _ = _run(compiled, x, torch.ones(2, 5, dtype=torch.float64))
        gp_c = {n: p.grad for n, p in compiled_model.named_parameters()}
        torch.testing.assert_close(y_c, y_e)
        torch.testing.assert_close(gx_c, gx_e)
        for key in gp_e:
            torch.testing.assert_close(gp_c[key], gp_e[key], msg=key)
        eager.zero_grad()
        compiled_model.zero_grad()
    for key, value in eager.state_dict().items():          # BatchNorm's running statistics
        torch.testing.assert_close(compiled_model.state_dict()[key], value, msg=key)


def test_compiled_model_matches_eager():
    """fullgraph=True fails on any graph break; aot_eager traces forward and backward
    through the custom operators without generating code (inductor: the slow test)."""
    torch._dynamo.reset()
    _compiled_matches_eager("aot_eager")


@pytest.mark.slow
def test_compiled_model_matches_eager_inductor():
    torch._dynamo.reset()
    _compiled_matches_eager("inductor")


@pytest.mark.parametrize("border,shape", [("reflect", (1, 2, 3, 4, 3)), ("edge", (2, 1, 4, 5)),
                                          ("wrap", (1, 2, 6))])
def test_gaussian_blur_gradcheck(border, shape):
    layer = cnn.GaussianBlur(0.7, border=border, truncate=2.0)
    x = rand(*shape, seed=8).requires_grad_(True)
    assert torch.autograd.gradcheck(layer, (x,))


# ---------------------------------------------------------------------------------------
# bfloat16: the layers keep bfloat16 and land within the stated bound of the float64 oracle
# |y - y_ref| <= gamma_K(2^-24) * (|x| (*) |w| + |b|) + 2^-8 |y_ref| (+ 2^-134): float32
# accumulation of K products, one final rounding to bfloat16 (convbench/tolerance.py)
# ---------------------------------------------------------------------------------------

BF16 = torch.bfloat16


def _bf16_bound(ref, absref, terms):
    u32, u_out = 2.0**-24, 2.0**-8
    return terms * u32 / (1 - terms * u32) * np.abs(absref) + u_out * np.abs(ref) + 2.0**-134


def _f64(t):
    return t.detach().double().numpy()


def _conv_layer_bf16(layer, x):
    """(y, y_ref, bound) of a bfloat16 conv layer on x."""
    from refimpl import conv as ref

    kw = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
              groups=layer.groups, border=layer.border, cval=layer.cval)
    y = layer(x)
    xs, ws, bs = _f64(x), _f64(layer.weight), _f64(layer.bias)
    y_ref = ref.conv(xs, ws, bs, **kw)
    absref = ref.conv(np.abs(xs), np.abs(ws), np.abs(bs), **{**kw, "cval": abs(layer.cval)})
    terms = layer.in_channels // layer.groups * math.prod(layer.kernel_size) + 1
    return y, y_ref, _bf16_bound(y_ref, absref, terms)


@pytest.mark.parametrize("args,kwargs,shape", [
    ((16, 8, 3), dict(padding="same", stride=2, border="reflect"), (2, 16, 9, 8)),
    ((6, 4, 3), dict(padding=1, groups=2, cval=0.5), (1, 6, 7)),
    ((4, 2, 2), dict(padding=1, border="wrap"), (1, 4, 3, 4, 3)),
], ids=str)
def test_bfloat16_conv_layer_within_bound(args, kwargs, shape):
    nsp = len(shape) - 2
    layer = getattr(cnn, f"Conv{nsp}d")(*args, **kwargs, dtype=BF16)
    x = rand(*shape, seed=11).to(BF16)
    y, y_ref, tol = _conv_layer_bf16(layer, x)
    assert y.dtype == BF16
    err = np.abs(_f64(y) - y_ref)
    assert (err <= tol).all(), float((err / tol).max())
    assert (err > 0).any()     # rounded to bfloat16 indeed: the check has something to see


def test_bfloat16_bound_rejects_bfloat16_accumulation():
    # planted: each partial sum rounded to bfloat16 (the sum a bfloat16 kernel would do)
    from refimpl import conv as ref

    layer = cnn.Conv1d(32, 4, 3, padding=1, bias=False, dtype=BF16)
    x = rand(2, 32, 16, seed=12).to(BF16)

    xs, ws = _f64(x), _f64(layer.weight)
    y_ref = ref.conv(xs, ws, padding=1)
    tol = _bf16_bound(y_ref, ref.conv(np.abs(xs), np.abs(ws), padding=1), 32 * 3)
    xp = F.pad(x, (1, 1))
    acc = torch.zeros(2, 4, 16, dtype=BF16)
    for c in range(32):
        for r in range(3):
            acc = acc + xp[:, c:c + 1, r:r + 16] * layer.weight[:, c, r].view(1, 4, 1)
    assert (np.abs(_f64(acc) - y_ref) > tol).any()
    y = layer(x)                                   # the layer itself stays within
    assert (np.abs(_f64(y) - y_ref) <= tol).all()


@pytest.mark.parametrize("layer,shape", [
    (cnn.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 3, 9, 8)),
    (cnn.AvgPool2d(3, 2, 1, count_include_pad=False), (2, 3, 9, 8)),
    (cnn.AvgPool1d(4, 2), (2, 3, 11)),
    (cnn.LPPool2d(2, 3), (1, 2, 7, 7)),
    (cnn.MaxPool3d(2), (1, 2, 4, 4, 4)),
], ids=repr)
def test_bfloat16_pool_layer_within_bound(layer, shape):
    from refimpl import pool as ref

    x = rand(*shape, seed=13).to(BF16)
    if isinstance(layer, cnn.LPPool2d):
        x = x.abs()
    y = layer(x)
    assert y.dtype == BF16
    xs = _f64(x)
    if isinstance(layer, cnn.MaxPool2d | cnn.MaxPool3d):
        y_ref = ref.max_pool(xs, layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                             layer.ceil_mode)
        assert np.array_equal(_f64(y), y_ref)              # a max never rounds
        return
    if isinstance(layer, cnn.LPPool2d):
        y_ref = ref.lp_pool(xs, layer.norm_type, layer.kernel_size, layer.stride,
                            layer.ceil_mode)
        # float32 roundings: 9 squares, 8 additions, the scaling by A/m (2), the root's
        # pow (2 u): K = 21 on the scale |y|; then the final rounding to bfloat16
        tol = _bf16_bound(y_ref, y_ref, 21)
    else:
        y_ref = ref.avg_pool(xs, layer.kernel_size, layer.stride, layer.padding,
                             layer.ceil_mode, layer.count_include_pad, layer.divisor_override)
        window = math.prod(layer.kernel_size) if isinstance(layer.kernel_size, tuple) \
            else layer.kernel_size ** 2
        tol = _bf16_bound(y_ref, ref.avg_pool(np.abs(xs), layer.kernel_size, layer.stride,
                                              layer.padding, layer.ceil_mode,
                                              layer.count_include_pad), window + 1)
    err = np.abs(_f64(y) - y_ref)
    assert (err <= tol).all(), float((err / tol).max())


def test_bfloat16_layers_train():
    model = torch.nn.Sequential(cnn.Conv2d(1, 4, 3, padding=1), cnn.MaxPool2d(2),
                                cnn.AvgPool2d(2)).to(BF16)
    x = rand(2, 1, 8, 8, seed=14).to(BF16).requires_grad_(True)
    model(x).sum().backward()
    assert x.grad.dtype == BF16 and model[0].weight.grad.dtype == BF16
    assert torch.isfinite(x.grad.float()).all()


# ---------------------------------------------------------------------------------------
# bfloat16 in the verifier: the 'bfloat16' suite (tensors only, so apart from 'small')
# ---------------------------------------------------------------------------------------

LAYER_OPS = ("conv", "conv_transpose", "conv_grad_input", "conv_grad_weight", "conv_grad_bias",
             "conv_relu", "max_pool", "avg_pool", "lp_pool", "max_pool_grad", "avg_pool_grad",
             "lp_pool_grad")


@pytest.mark.parametrize("op", LAYER_OPS)
def test_verifier_accepts_the_bfloat16_cases(op):
    from convbench import registry, verification
    from convbench.cases import suite

    cases = suite("bfloat16", op)
    assert cases and all(set(c.spec.dtypes) == {"bfloat16"} for c in cases)
    report = verification.verify_candidates(registry.candidates(op), cases)
    assert report.passed, str(report)
    torch_cpu = "conv_torch" if op.startswith("conv") else "pool_torch"
    for row in report.rows:
        if row.candidate == torch_cpu:
            assert row.status == "pass" and row.worst <= 1, row
        elif row.status == "unsupported":
            assert "bfloat16" in row.detail, row
        else:
            assert row.status == "unavailable", row      # GPU candidates on this machine


def _planted(op, fn):
    """A candidate module (torch tensors in) whose ``op`` is ``fn``."""
    import types

    from candidates.torch_support import to_native
    from convbench.registry import Candidate

    module = types.ModuleType("planted")
    module.LIBRARY, module.DEVICE, module.ERROR = "torch", "cpu", "direct"
    module.supports = lambda spec: None
    module.to_native = to_native
    setattr(module, op, fn)
    return Candidate(op, fn.__name__, module_path="tests.planted", _module=module)


def _conv_channel_sums_in_bfloat16(x, w, bias=None, **kw):
    """planted: per-channel convs summed in bfloat16 (each partial sum rounded)."""
    from candidates.conv.conv_torch import conv

    groups = kw.get("groups", 1)
    per_group = x.shape[1] // groups
    out = None
    for c in range(per_group):
        xs = torch.cat([x[:, g * per_group + c:g * per_group + c + 1] for g in range(groups)], 1)
        part = conv(xs, w[:, c:c + 1].contiguous(), **{**kw, "groups": groups})
        out = part if out is None else out + part                  # bfloat16 addition
    return out if bias is None else out + bias.view(1, -1, *([1] * (x.ndim - 2)))


def _conv_float32_result(x, w, bias=None, **kw):
    """planted: computed right, but handed back in float32 instead of bfloat16."""
    from candidates.conv.conv_torch import conv

    return conv(x.float(), w.float(), None if bias is None else bias.float(), **kw)


def _avg_pool_sum_in_bfloat16(x, kernel_size, stride=None, padding=0, ceil_mode=False,
                              count_include_pad=True, divisor_override=None):
    """planted: avg_pool over bfloat16 values in bfloat16 arithmetic (torch's BFloat16 kernel
    without a float32 accumulator is what this imitates: the window sum rounded per tap)."""
    n = x.ndim - 2
    k = (kernel_size,) * n if isinstance(kernel_size, int) else tuple(kernel_size)
    pooled = F.avg_pool2d if n == 2 else None
    if pooled is None or padding or ceil_mode or divisor_override:
        from candidates.pool.pool_torch import avg_pool

        return avg_pool(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override)
    s = k if stride is None else ((stride,) * n if isinstance(stride, int) else tuple(stride))
    windows = x.unfold(2, k[0], s[0]).unfold(3, k[1], s[1])
    total = torch.zeros(windows.shape[:4], dtype=torch.bfloat16)
    for i in range(k[0]):
        for j in range(k[1]):
            total = total + windows[..., i, j]
    return total / (k[0] * k[1])


@pytest.mark.parametrize("op,fn,expect", [
    ("conv", _conv_channel_sums_in_bfloat16, "error"),
    ("conv", _conv_float32_result, "dtype float32, expected bfloat16"),
    ("avg_pool", _avg_pool_sum_in_bfloat16, "error"),
])
def test_verifier_rejects_planted_bfloat16_mistakes(op, fn, expect):
    from convbench import verification
    from convbench.cases import suite

    report = verification.verify_candidates([_planted(op, fn)], suite("bfloat16", op))
    assert not report.passed
    assert all(r.status in ("pass", "FAIL") for r in report.rows), str(report)
    assert any(expect in r.detail for r in report.failures), str(report)


def test_user_functions_are_not_given_bfloat16_cases():
    import convbench
    from convbench.cases import suite

    report = convbench.verify("max_pool", lambda x, *a, **k: x, cases=suite("bfloat16",
                                                                           "max_pool"))
    assert {r.status for r in report.rows} == {"unsupported"}
    assert all("bfloat16" in r.detail for r in report.rows)


def test_bfloat16_case_arrays_hold_bfloat16_values():
    from convbench.cases import suite

    for case in suite("bfloat16", "conv")[:2] + suite("bfloat16", "avg_pool")[:2]:
        for a in case.arrays():
            assert a.dtype == np.float32
            t = torch.from_numpy(np.ascontiguousarray(a))
            assert torch.equal(t.to(BF16).float(), t)          # exactly representable


def test_bfloat16_batchnorm_layer_within_the_op_bound():
    """BatchNorm2d in bfloat16 (training: output and running statistics, all bfloat16)
    within batch_norm's stated bound (its scale accounts for the variance's cancellation)
    plus bfloat16's final rounding."""
    from convbench.spec import Spec
    from convbench.tolerance import bound, compare

    layer = cnn.BatchNorm2d(3, dtype=BF16)
    with torch.no_grad():
        layer.weight.copy_(rand(3, seed=15))
        layer.bias.copy_(rand(3, seed=16))
    x = (rand(4, 3, 5, 5, seed=17) * 2 + 3).to(BF16)
    before = [t.detach().float().numpy().copy() for t in (layer.running_mean, layer.running_var,
                                                          layer.weight, layer.bias)]
    y = layer(x)
    assert y.dtype == layer.running_mean.dtype == BF16
    spec = Spec.make("batch_norm", [tuple(x.shape)] + [(3,)] * 4, ["bfloat16"] * 5,
                     training=True)
    arrays = [x.float().numpy()] + before
    outputs = (y, layer.running_mean, layer.running_var)
    for got, (ref, scale) in zip(outputs, spec.operation.reference_outputs(spec, arrays)):
        tol = bound("direct", result_dtype="bfloat16", ref=ref, absref=scale,
                    terms=spec.operation.terms(spec))
        verdict = compare(got.detach().float().numpy(), ref, tol)
        assert verdict["passed"], verdict
