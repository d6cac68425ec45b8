"""Network layers side by side (convbench.nn_bench): the layer list covers the catalogue's
network layers with N scaled for CPU, the check accepts convbench.nn and torch.nn and
rejects planted bugs before anything is timed, and `convbench bench --suite nn` prints
the table."""
from __future__ import annotations

import types

import pytest

torch = pytest.importorskip("torch")

from convbench import cli, nn_bench  # noqa: E402
from convbench.cases.conv import LAYERS  # noqa: E402
from convbench.timing import Protocol  # noqa: E402

TINY = Protocol(warmup_s=0.0, sample_s=0.0005, samples=7)
SMALL = {
    "conv": nn_bench.Layer("tiny-conv", "Conv2d", (2, 3, 9, 8), (3, 4, (3, 2)),
                           {"stride": 2, "padding": 1}),
    "maxpool": nn_bench.Layer("tiny-maxpool", "MaxPool2d", (2, 3, 9, 9), (3,),
                              {"stride": 2, "padding": 1}),
    "avgpool": nn_bench.Layer("tiny-avgpool", "AvgPool2d", (2, 5, 4, 4), (4,)),
    "batchnorm": nn_bench.Layer("tiny-batchnorm", "BatchNorm2d", (3, 4, 5, 5), (4,),
                                {"eps": 0.1}),   # large enough to show where eps goes
}


def test_every_catalogue_layer_with_n_in_its_id():
    convs = nn_bench.conv_layers()
    assert [layer.name.split("-n")[0] for layer in convs] == list(LAYERS)
    for layer in convs:
        n = layer.x_shape[0]
        assert 1 <= n <= 4 and layer.name.endswith(f"-n{n}")
        c, h, w, o, r, s, stride, padding = LAYERS[layer.name.split("-n")[0]]
        assert layer.x_shape[1:] == (c, h, w) and layer.args == (c, o, (r, s))
        assert layer.kwargs == {"stride": stride, "padding": padding}
    names = [layer.name for layer in nn_bench.all_layers()]
    assert len(names) == len(set(names))
    assert {"resnet-stem-maxpool-n2", "global-avgpool-n2", "seed-batchnorm-n2"} <= set(names)
    assert nn_bench.select(["vgg-maxpool"]) == [l for l in nn_bench.all_layers()
                                                if "vgg-maxpool" in l.name]
    with pytest.raises(ValueError, match="no layer matches"):
        nn_bench.select(["no-such-layer"])


@pytest.mark.parametrize("kind", SMALL)
def test_convbench_and_torch_layers_pass_the_check(kind):
    layer = SMALL[kind]
    modules, x, dy, failures = nn_bench.prepare(layer)
    assert failures == {}
    assert type(modules["torch.nn"]) is getattr(torch.nn, layer.module)
    assert type(modules["convbench.nn"]).__module__.startswith("convbench.nn")


def _namespace(**classes):
    return types.SimpleNamespace(**{**{n: getattr(torch.nn, n) for n in
                                       ("Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm2d")},
                                    **classes})


class NoBias(torch.nn.Conv2d):
    def forward(self, x):
        return self._conv_forward(x, self.weight, None)


class Flipped(torch.nn.Conv2d):
    def forward(self, x):
        return self._conv_forward(x, self.weight.flip(-1, -2), self.bias)


class RoundedHalf(torch.nn.Conv2d):
    """float16 storage of the input: an accuracy bug, not a formula bug."""
    def forward(self, x):
        return self._conv_forward(x.half().float(), self.weight, self.bias)


class AvgForMax(torch.nn.MaxPool2d):
    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x, self.kernel_size, self.stride, self.padding,
                                              count_include_pad=False)


class BadPoolGradient(torch.nn.MaxPool2d):
    """Right values; the gradient spread over the window (average pooling's)."""
    def forward(self, x):
        avg = torch.nn.functional.avg_pool2d(x, self.kernel_size, self.stride, self.padding)
        return super().forward(x).detach() + (avg - avg.detach())   # exact values


class UnbiasedNormalisation(torch.nn.BatchNorm2d):
    def forward(self, x):
        mean = x.mean((0, 2, 3), keepdim=True)
        var = x.var((0, 2, 3), unbiased=True, keepdim=True)
        y = (x - mean) / (var + self.eps).sqrt()
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class EpsOutside(torch.nn.BatchNorm2d):
    def forward(self, x):
        mean = x.mean((0, 2, 3), keepdim=True)
        var = x.var((0, 2, 3), unbiased=False, keepdim=True)
        y = (x - mean) / (var.sqrt() + self.eps)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class GradientWithoutMean(torch.nn.BatchNorm2d):
    """Forward right; the batch mean treated as a constant in the backward."""
    def forward(self, x):
        mean = x.mean((0, 2, 3), keepdim=True).detach()
        var = x.var((0, 2, 3), unbiased=False, keepdim=True)
        y = (x - mean) / (var + self.eps).sqrt()
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


@pytest.mark.parametrize("kind, bug, where", [
    ("conv", {"Conv2d": NoBias}, "y"),
    ("conv", {"Conv2d": Flipped}, "y"),
    ("conv", {"Conv2d": RoundedHalf}, "y"),
    ("maxpool", {"MaxPool2d": AvgForMax}, "y"),
    ("maxpool", {"MaxPool2d": BadPoolGradient}, "x"),
    ("batchnorm", {"BatchNorm2d": UnbiasedNormalisation}, "y"),
    ("batchnorm", {"BatchNorm2d": EpsOutside}, "y"),
    ("batchnorm", {"BatchNorm2d": GradientWithoutMean}, "x"),
], ids=lambda v: v if isinstance(v, str) else next(iter(v.values())).__name__)
def test_planted_bugs_are_rejected_and_not_timed(kind, bug, where, monkeypatch):
    layer = SMALL[kind]
    _, _, _, failures = nn_bench.prepare(layer, _namespace(**bug))
    assert list(failures) == ["convbench.nn"]
    assert failures["convbench.nn"].startswith(f"{where}:")
    monkeypatch.setattr(nn_bench, "measure", lambda *a, **k: pytest.fail("a wrong layer was timed"))
    row = nn_bench.measure_layer(layer, TINY, _namespace(**bug))
    assert row["status"] == "FAIL" and "forward_ratio" not in row


def test_a_layer_that_raises_fails_its_own_row():
    class Raises(torch.nn.Conv2d):
        def forward(self, x):
            raise RuntimeError("no kernel for this")

    row = nn_bench.measure_layer(SMALL["conv"], TINY, _namespace(Conv2d=Raises))
    assert row["status"] == "error" and "no kernel for this" in row["reason"]


def test_a_missing_layer_is_unavailable():
    row = nn_bench.measure_layer(SMALL["conv"], TINY, types.SimpleNamespace())
    assert row["status"] == "unavailable" and "Conv2d" in row["reason"]


def test_measured_row_has_both_directions():
    row = nn_bench.measure_layer(SMALL["conv"], TINY)
    assert row["status"] == "pass"
    for key in ("forward", "training"):
        assert row[f"{key}_convbench_s"] > 0 and row[f"{key}_torch_s"] > 0
        assert row[f"{key}_ratio"] == row[f"{key}_convbench_s"] / row[f"{key}_torch_s"]
    md = nn_bench.markdown([row])
    assert md.splitlines()[0].startswith("| layer | module | input | status |")
    assert "| tiny-conv | Conv2d | 2x3x9x8 | pass |" in md


def test_bench_suite_nn_prints_the_table(monkeypatch, capsys):
    monkeypatch.setattr(nn_bench, "PROTOCOL", TINY)
    code = cli.main(["bench", "--suite", "nn", "--filter", "vgg-maxpool-14", "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "vgg-maxpool-14-n2" in out and "pass" in out and "fwd+bwd ratio" in out
    assert cli.main(["bench", "--suite", "nn", "--filter", "nothing-like-this"]) == cli.EXIT_USAGE


def test_asv_suite_covers_every_layer_and_skips_wrong_ones(monkeypatch):
    import suites.nn_bench

    names, libraries, directions = suites.nn_bench.Layer.params
    assert names == [layer.name for layer in nn_bench.all_layers()]
    assert libraries == list(nn_bench.PEERS) and directions == ["forward", "forward+backward"]
    bench = suites.nn_bench.Layer()
    monkeypatch.setattr(nn_bench, "by_name", lambda name: SMALL["conv"])
    bench.setup("tiny-conv", "convbench.nn", "forward+backward")
    bench.time_layer("tiny-conv", "convbench.nn", "forward+backward")
    real = nn_bench.prepare
    monkeypatch.setattr(nn_bench, "prepare", lambda layer: (*real(layer)[:3], {"convbench.nn": "y: off"}))
    with pytest.raises(NotImplementedError, match="wrong result"):
        bench.setup("tiny-conv", "convbench.nn", "forward")
