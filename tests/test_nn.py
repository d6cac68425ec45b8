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
