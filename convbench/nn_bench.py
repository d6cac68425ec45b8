"""Network layers side by side: a ``convbench.nn`` layer against the same ``torch.nn`` layer.

Every layer shape of the case catalogue's network layers (``convbench.cases.conv.LAYERS``:
DeepBench D1-D13, ResNet-50 R1-R13, VGG-16 V2/V8, convnet-benchmarks S1/S2), the ResNet-50
and VGG-16 pooling shapes, and BatchNorm2d on the seed-batchnorm shape and ResNet-like ones.
N is scaled down for a 2-core CPU (``BATCH``: 1-4; the layer's id carries it, ``D1-n4``).
Each layer is built once from torch's initialisation and loaded into the convbench one
(same state_dict), then:

1. verified: both layers' float32 output and gradients (input and parameters, for a random
   upstream gradient) are compared with torch's float64 result of the same layer, under the
   bound ``ERROR_FACTOR * gamma_K(u32) * scale`` per element, where ``scale`` is the same
   computation on absolute values (conv, average pool: the layer run in float64 on |x|,
   |w|, |b| and |dy|; max pool: exact forward, |dy| routed by x; BatchNorm: ``_bn_scales``)
   and K the longest sum behind that element (see ``Layer.terms``). A row that fails is
   not timed;
2. timed, interleaved (convbench.timing.measure): the forward pass (``torch.no_grad()``,
   the layer in training mode) and forward + backward (``torch.autograd.grad`` of the
   output against the input and the parameters), convbench and torch in one run.

``convbench bench --suite nn`` prints the table; ``suites/nn_bench.py`` is the asv form.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convbench.cases.conv import LAYERS
from convbench.timing import Protocol, measure

# N per layer family, scaled for a 2-core CPU (the GPU shapes' 16-128 would take minutes)
BATCH = {"D": 4, "R": 2, "V": 1, "S": 1}
ERROR_FACTOR = 2.0      # both sides of a comparison may sit anywhere inside their bound
U32 = 2.0 ** -24
PEERS = ("convbench.nn", "torch.nn")
# longer samples than QUICK: layers of 1-100 ms on a shared 2-core machine
PROTOCOL = Protocol(warmup_s=0.1, sample_s=0.05, samples=9)


@dataclass(frozen=True)
class Layer:
    """One layer: ``module`` is the torch.nn class name, ``args``/``kwargs`` its
    constructor's, ``x_shape`` the input (N, C, H, W)."""
    name: str
    module: str
    x_shape: tuple
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def terms(self, y_shape) -> dict[str, int]:
        """K per result: the longest sum of products behind one element (+1 for a bias)."""
        n, c, h, w = self.x_shape
        count = n * int(np.prod(y_shape[2:]))
        if self.module == "Conv2d":
            o, (r, s) = self.args[1], self.args[2]
            stride = self.kwargs.get("stride", 1)
            overlap = -(-r // stride) * -(-s // stride)
            return {"y": c * r * s + 1, "x": o * overlap, "weight": count, "bias": count}
        if self.module in ("MaxPool2d", "AvgPool2d"):
            k = self.args[0]
            stride = self.kwargs.get("stride") or k
            return {"y": k * k + 1, "x": (-(-k // stride)) ** 2 + 1}
        if self.module == "BatchNorm2d":
            reduced = n * h * w
            return {"y": reduced + 8, "x": reduced + 8, "weight": reduced + 8, "bias": reduced}
        raise ValueError(f"unknown layer module {self.module!r}")


def conv_layers() -> list[Layer]:
    out = []
    for name, (c, h, w, o, r, s, stride, padding) in LAYERS.items():
        n = BATCH[name[0]]
        out.append(Layer(f"{name}-n{n}", "Conv2d", (n, c, h, w), (c, o, (r, s)),
                         {"stride": stride, "padding": padding}))
    return out


def pool_layers(n: int = 2) -> list[Layer]:
    """ResNet-50's stem max pool, VGG-16's 2x2 max pools, ResNet-50's global average pool."""
    return [
        Layer(f"resnet-stem-maxpool-n{n}", "MaxPool2d", (n, 64, 112, 112), (3,),
              {"stride": 2, "padding": 1}),
        Layer(f"vgg-maxpool-224-n{n}", "MaxPool2d", (n, 64, 224, 224), (2,), {"stride": 2}),
        Layer(f"vgg-maxpool-14-n{n}", "MaxPool2d", (n, 512, 14, 14), (2,), {"stride": 2}),
        Layer(f"global-avgpool-n{n}", "AvgPool2d", (n, 2048, 7, 7), (7,)),
    ]


def batch_norm_layers() -> list[Layer]:
    """seed-batchnorm (224x224, 100 channels; N = 2 of the seed's 10) and ResNet-50's
    BatchNorm inputs after the stem, in layer1 and in layer3."""
    return [
        Layer("seed-batchnorm-n2", "BatchNorm2d", (2, 100, 224, 224), (100,)),
        Layer("resnet-bn-stem-n2", "BatchNorm2d", (2, 64, 112, 112), (64,)),
        Layer("resnet-bn-layer1-n2", "BatchNorm2d", (2, 256, 56, 56), (256,)),
        Layer("resnet-bn-layer3-n4", "BatchNorm2d", (4, 1024, 14, 14), (1024,)),
    ]


def all_layers() -> list[Layer]:
    return conv_layers() + pool_layers() + batch_norm_layers()


def select(filters=None) -> list[Layer]:
    """The layers whose name contains one of ``filters`` (all when None or empty)."""
    layers = all_layers()
    if filters:
        layers = [layer for layer in layers if any(f in layer.name for f in filters)]
        if not layers:
            raise ValueError(f"no layer matches {list(filters)}; the layers: "
                             f"{[layer.name for layer in all_layers()]}")
    return layers


def by_name(name: str) -> Layer:
    for layer in all_layers():
        if layer.name == name:
            return layer
    raise ValueError(f"unknown layer {name!r}; accepted: {[layer.name for layer in all_layers()]}")


# ------------------------------------------------------------------------ building

class Unavailable(RuntimeError):
    """convbench.nn lacks the layer's class."""


def build(layer: Layer, layers=None, seed: int = 0):
    """{"convbench.nn": module, "torch.nn": module}, float32, training mode, the torch
    module initialised from ``seed`` and its state_dict loaded into the other."""
    import torch

    if layers is None:
        import convbench.nn as layers
    cls = getattr(layers, layer.module, None)
    if cls is None:
        raise Unavailable(f"{getattr(layers, '__name__', layers)} has no {layer.module}")
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        peer = getattr(torch.nn, layer.module)(*layer.args, **layer.kwargs)
        if layer.module == "BatchNorm2d":   # not the ones and zeros of a fresh layer
            with torch.no_grad():
                peer.weight.uniform_(0.5, 1.5)
                peer.bias.uniform_(-0.5, 0.5)
        ours = cls(*layer.args, **layer.kwargs)
    finally:
        torch.random.set_rng_state(state)
    ours.load_state_dict(peer.state_dict())
    return {"convbench.nn": ours.train(), "torch.nn": peer.train()}


def inputs(layer: Layer, seed: int = 0):
    """The float32 input: standard normal (max-pool ties have probability zero)."""
    import torch

    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.standard_normal(layer.x_shape, dtype=np.float32))


def forward_backward(module, x, dy):
    """(y, {"x": dx, <parameter name>: grad, ...}) by autograd (an input the output does
    not depend on has no entry)."""
    import torch

    x = x.detach().requires_grad_(True)
    params = dict(module.named_parameters())
    y = module(x)
    grads = torch.autograd.grad(y, [x, *params.values()], dy, allow_unused=True)
    return y.detach(), {k: g for k, g in zip(["x", *params], grads) if g is not None}


# --------------------------------------------------------------------- verification

def _bn_scales(x, module, dy):
    """Absolute-value scales of BatchNorm2d (training mode) in float64: with
    xa = (|x| + |mean|) / sqrt(var + eps) per channel,
    y: |w| xa + |b|;  weight: sum |dy| xa;  bias: sum |dy|;
    x: |w| / sqrt(var + eps) * (|dy| + mean |dy| + xa * mean(|dy| xa))."""
    axes = (0, 2, 3)
    mean = x.mean(axes, keepdim=True)
    var = x.var(axes, unbiased=False, keepdim=True)
    inv = 1.0 / (var + module.eps).sqrt()
    xa = (x.abs() + mean.abs()) * inv
    w = module.weight.detach().double().abs().view(1, -1, 1, 1)
    b = module.bias.detach().double().abs().view(1, -1, 1, 1)
    ady = dy.abs()
    return {"y": w * xa + b, "weight": (ady * xa).sum(axes), "bias": ady.sum(axes),
            "x": w * inv * (ady + ady.mean(axes, keepdim=True)
                            + xa * (ady * xa).mean(axes, keepdim=True))}


def reference(layer: Layer, module, x, dy):
    """(float64 results, per-element bounds) for ``module`` (torch.nn, float32) on x, dy."""
    import copy

    import torch

    ref_module = copy.deepcopy(module).double()
    x64, dy64 = x.double(), dy.double()
    y, grads = forward_backward(ref_module, x64, dy64)
    want = {"y": y, **grads}
    if layer.module == "BatchNorm2d":
        scales = _bn_scales(x64, ref_module, dy64)
    elif layer.module == "MaxPool2d":
        _, routed = forward_backward(copy.deepcopy(ref_module), x64, dy64.abs())
        scales = {"y": torch.zeros_like(y), "x": routed["x"]}
    else:  # linear in every input: the same layer on absolute values
        abs_module = copy.deepcopy(ref_module)
        with torch.no_grad():
            for p in abs_module.parameters():
                p.abs_()
        ay, agrads = forward_backward(abs_module, x64.abs(), dy64.abs())
        scales = {"y": ay, **agrads}
    terms = layer.terms(tuple(y.shape))
    bounds = {}
    for key, scale in scales.items():
        k = terms[key]
        gamma = k * U32 / (1 - k * U32)
        bounds[key] = ERROR_FACTOR * (gamma * scale + U32 * want[key].abs())
    return want, bounds


def check(got: dict, want: dict, bounds: dict) -> str | None:
    """None when every result lies within its bound, else what is off and by how much."""
    for key, ref in want.items():
        if key not in got:
            return f"{key}: no gradient (the output does not depend on it)"
        value = got[key].double()
        if value.shape != ref.shape:
            return f"{key}: shape {tuple(value.shape)}, expected {tuple(ref.shape)}"
        excess = ((value - ref).abs() - bounds[key]).max()
        if not bool(excess <= 0):
            err = float((value - ref).abs().max())
            return f"{key}: error {err:.3g} exceeds its bound (by {float(excess):.3g})"
    return None


def verify(layer: Layer, modules: dict, x, dy) -> dict[str, str | None]:
    """Per side: None (within the bound) or the failure."""
    want, bounds = reference(layer, modules["torch.nn"], x, dy)
    out = {}
    for name, module in modules.items():
        y, grads = forward_backward(module, x, dy)
        out[name] = check({"y": y, **grads}, want, bounds)
    return out


# --------------------------------------------------------------------------- timing

def prepare(layer: Layer, layers=None, seed: int = 0):
    """(modules, x, dy, failures): the two layers (``build``), the input and upstream
    gradient, and the verification's failures per side ({} when both pass). Raises
    Unavailable when convbench.nn lacks the layer."""
    import torch

    modules = build(layer, layers, seed)
    x = inputs(layer, seed)
    with torch.no_grad():
        y = modules["torch.nn"](x)
    dy = torch.from_numpy(np.random.default_rng(seed + 1).standard_normal(
        tuple(y.shape), dtype=np.float32))
    failures = {name: why for name, why in verify(layer, modules, x, dy).items() if why}
    return modules, x, dy, failures


def callables(module, x, dy) -> dict:
    """{"forward": f, "forward+backward": f}: zero-argument functions running ``module``
    on ``x`` without autograd, and with the gradients of the input and parameters for
    the upstream gradient ``dy``."""
    import torch

    xg = x.detach().requires_grad_(True)
    params = list(module.parameters())

    def forward():
        with torch.no_grad():
            return module(x)

    def training():
        return torch.autograd.grad(module(xg), [xg, *params], dy)

    return {"forward": forward, "forward+backward": training}


def measure_layer(layer: Layer, protocol: Protocol = PROTOCOL, layers=None, seed: int = 0) -> dict:
    """One row: verification, then forward and forward+backward medians (seconds) of
    both layers from one interleaved run, and the ratios convbench over torch."""
    row = {"layer": layer.name, "module": layer.module,
           "input": "x".join(map(str, layer.x_shape)), "status": "pass", "reason": ""}
    try:
        modules, x, dy, failures = prepare(layer, layers, seed)
    except Unavailable as exc:
        return {**row, "status": "unavailable", "reason": str(exc)}
    except Exception as exc:  # a layer that raises fails its own row; the run goes on
        return {**row, "status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    if failures:
        return {**row, "status": "FAIL",
                "reason": "; ".join(f"{name}: {why}" for name, why in failures.items())}
    fns = {f"{part} {name}": fn for name, module in modules.items()
           for part, fn in callables(module, x, dy).items()}
    t = measure(fns, protocol)
    for part, key in (("forward", "forward"), ("forward+backward", "training")):
        ours, peer = t[f"{part} convbench.nn"].median, t[f"{part} torch.nn"].median
        row[f"{key}_convbench_s"], row[f"{key}_torch_s"] = ours, peer
        row[f"{key}_ratio"] = ours / peer
    return row


def measure_all(layers_list=None, protocol: Protocol = PROTOCOL, threads: int | None = None,
                layers=None, progress=None) -> list[dict]:
    """Every layer of ``layers_list`` (default ``all_layers()``), with ``threads`` threads in
    torch and BLAS (None: every core)."""
    from convbench.thread_settings import threads as thread_count

    rows = []
    with thread_count(threads, libraries=("torch",)):
        for layer in all_layers() if layers_list is None else layers_list:
            rows.append(measure_layer(layer, protocol, layers))
            if progress is not None:
                progress(rows[-1])
    return rows


def _ms(seconds) -> str:
    return "" if seconds is None else f"{seconds * 1e3:.3g}"


NUMBER_COLUMNS = ("fwd convbench ms", "fwd torch ms", "fwd ratio", "fwd+bwd convbench ms",
                  "fwd+bwd torch ms", "fwd+bwd ratio")


def format_rows(rows: list[dict]) -> list[dict]:
    """Rows for convbench.table: milliseconds and ratios (convbench over torch)."""
    out = []
    for r in rows:
        out.append({"layer": r["layer"], "module": r["module"], "input": r["input"],
                    "status": r["status"],
                    "fwd convbench ms": _ms(r.get("forward_convbench_s")),
                    "fwd torch ms": _ms(r.get("forward_torch_s")),
                    "fwd ratio": f"{r['forward_ratio']:.2f}" if "forward_ratio" in r else "",
                    "fwd+bwd convbench ms": _ms(r.get("training_convbench_s")),
                    "fwd+bwd torch ms": _ms(r.get("training_torch_s")),
                    "fwd+bwd ratio": f"{r['training_ratio']:.2f}" if "training_ratio" in r else "",
                    "reason": r["reason"]})
    return out


def markdown(rows: list[dict]) -> str:
    """The table as Markdown (results/README.md)."""
    formatted = format_rows(rows)
    keys = [k for k in formatted[0] if k != "reason" or any(r["reason"] for r in formatted)]
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(r[k] for k in keys) + " |" for r in formatted]
    return "\n".join(lines)
