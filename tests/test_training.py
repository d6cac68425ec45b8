"""The seed CNN trained through convbench.nn beside torch.nn (convbench.training): the
data, the network's shapes, same weights and batches, float64 agreement after 20 steps,
torch.compile of the convbench model, and the report that `convbench report --training`
writes."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from convbench import training  # noqa: E402
from convbench.timing import Protocol  # noqa: E402

TINY = Protocol(warmup_s=0.0, sample_s=0.0005, samples=7)


@pytest.fixture(scope="module")
def digits64():
    return training.digits("float64")


def test_digits_are_the_bundled_set_upsampled_bilinearly(digits64):
    from scipy import ndimage
    from sklearn.datasets import load_digits

    x, y = digits64
    assert x.shape == (1797, 1, 28, 28) and x.dtype == torch.float64
    assert y.dtype == torch.int64 and sorted(set(y.tolist())) == list(range(10))
    assert abs(float(x.mean())) < 1e-12 and abs(float(x.std()) - 1) < 1e-12
    # independent resampling: output pixel i reads the input at (i + 0.5) * 8 / 28 - 0.5
    # (pixel centres, align_corners=False), clamped to the edge, linear in each axis
    raw = load_digits().images[5] / 16.0
    at = np.clip((np.arange(28) + 0.5) * 8 / 28 - 0.5, 0, 7)
    rows, cols = np.meshgrid(at, at, indexing="ij")
    want = ndimage.map_coordinates(raw, [rows, cols], order=1, mode="nearest")
    full = torch.nn.functional.interpolate(
        torch.from_numpy(load_digits().images / 16.0).unsqueeze(1), size=(28, 28),
        mode="bilinear", align_corners=False)
    got = x[5, 0].numpy() * float(full.std()) + float(full.mean())
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_the_network_reaches_96_features_from_28x28():
    import torch.nn as tnn

    model = training.seed_cnn(tnn, "float64")
    convs = [m for m in model if isinstance(m, tnn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.padding) for m in convs] == [
        (1, 3, (3, 3), (0, 0)), (3, 3, (3, 3), (0, 0)), (3, 6, (3, 3), (0, 0)),
        (6, 6, (3, 3), (0, 0))]
    sizes = []
    x = torch.zeros(2, 1, 28, 28, dtype=torch.float64)
    for layer in model:
        x = layer(x)
        if x.dim() == 4 and not isinstance(layer, tnn.ReLU):
            sizes.append(x.shape[-1])
    assert sizes == [26, 24, 12, 10, 8, 4]                  # 3x3 valid convs, 2x2 pools
    assert x.shape == (2, 10)
    linears = [m for m in model if isinstance(m, tnn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(96, 30), (30, 10)]


def test_twin_models_share_weights_and_leave_the_random_stream():
    import convbench.nn

    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    models = training.twin_models("float64", seed=7)
    assert torch.equal(torch.rand(3), before)
    ours, peer = models["convbench.nn"], models["torch.nn"]
    assert isinstance(ours[0], convbench.nn.Conv2d) and isinstance(ours[4], convbench.nn.MaxPool2d)
    assert type(peer[0]) is torch.nn.Conv2d
    assert ours.state_dict().keys() == peer.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(),
                                                  peer.state_dict().values()))
    other = training.twin_models("float64", seed=8)["torch.nn"]
    assert not torch.equal(other[0].weight, peer[0].weight)


def test_batch_order_is_seeded_and_covers_each_epoch():
    order = training.batch_order(10, 3, 7, seed=1)
    assert [len(b) for b in order] == [3] * 7
    # 3 full batches per epoch of 10: each epoch's 9 indices are distinct
    for epoch in (order[0:3], order[3:6]):
        flat = np.concatenate(epoch)
        assert len(set(flat.tolist())) == 9 and flat.max() < 10
    assert all(np.array_equal(a, b) for a, b in zip(order, training.batch_order(10, 3, 7, seed=1)))
    assert not all(np.array_equal(a, b) for a, b in zip(order, training.batch_order(10, 3, 7, seed=2)))


@pytest.mark.parametrize("call, message", [
    (lambda: training.batch_order(10, 11, 1), "batch_size"),
    (lambda: training.batch_order(10, 0, 1), "batch_size"),
    (lambda: training.batch_order(10, 2, -1), "steps"),
    (lambda: training.seed_cnn(torch.nn, "float16"), "dtype"),
    (lambda: training.compare("float64", steps=1.5), "steps"),
])
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_layers_without_conv_are_refused():
    with pytest.raises(TypeError, match="Conv2d"):
        training.seed_cnn(object())


def test_float64_training_ends_with_the_same_parameters(digits64):
    import convbench

    with convbench.threads(1):     # a shared machine: idle-spinning thread pools cost most
        result = training.compare("float64", steps=20, batch_size=8, data=digits64)
    assert result.parameter_difference <= 1e-9
    ours, peer = result.losses["convbench.nn"], result.losses["torch.nn"]
    assert len(ours) == len(peer) == 20
    np.testing.assert_allclose(ours, peer, rtol=1e-9)
    # the steps changed the weights: the agreement is not that of two idle models
    start = training.twin_models("float64")["torch.nn"]
    assert training.parameter_difference(result.models["torch.nn"], start) > 1e-3


def _compile_matches_eager(backend):
    torch.manual_seed(0)
    model = training.twin_models("float32")["convbench.nn"]
    x = training.digits("float32")[0][:4]
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    want = model(x)
    got = compiled(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    want_grads = torch.autograd.grad(want.square().sum(), list(model.parameters()))
    got_grads = torch.autograd.grad(got.square().sum(), list(model.parameters()))
    for a, b in zip(got_grads, want_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_compiled_convbench_model_matches_eager():
    """fullgraph tracing through the custom operators' fake implementations and autograd
    (aot_eager: the graph is captured and run by torch's own kernels, no C++ build)."""
    import convbench

    torch._dynamo.reset()
    with convbench.threads(1):
        _compile_matches_eager("aot_eager")


@pytest.mark.slow
def test_inductor_compiled_convbench_model_matches_eager():
    torch._dynamo.reset()
    _compile_matches_eager("inductor")


def test_training_report_writes_the_curves_and_the_step_table(tmp_path):
    written, text = training.training_report(tmp_path, steps=3, batch_size=16,
                                             batch_sizes=(8,), protocol=TINY, threads=1)
    png, md = written
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    body = md.read_text()
    assert "| 8 | 1 |" in body and "convbench.nn" in body and "torch.nn" in body
    assert "3 SGD steps of batch 16" in text


def test_report_training_command_runs_the_training_report(tmp_path, monkeypatch, capsys):
    from convbench import cli

    calls = []

    def report(out_dir, **kwargs):
        calls.append((out_dir, kwargs))
        return [tmp_path / "training.md"], "the step table"

    monkeypatch.setattr(training, "training_report", report)
    assert cli.main(["report", "--training", "--output", str(tmp_path), "--threads", "1"]) == 0
    assert calls == [(str(tmp_path), {"threads": 1})]
    out = capsys.readouterr().out
    assert "the step table" in out and f"wrote {tmp_path / 'training.md'}" in out
