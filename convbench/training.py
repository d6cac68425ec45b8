"""The seed CNN (seed-mnist-cnn) trained through convbench layers beside torch.nn layers.

The network, as the seed described it: conv 1->3, conv 3->3, max pool 2, conv 3->6,
conv 6->6, max pool 2, fully connected 96->30->10. The convolutions are 3x3, stride 1,
no padding, each followed by a ReLU (so is the first fully connected layer); on a 28x28
image that gives 28 -> 26 -> 24 -> pool 12 -> 10 -> 8 -> pool 4, and 6 * 4 * 4 = 96
features.

Data: scikit-learn's bundled handwritten digits (``sklearn.datasets.load_digits``: 1797
8x8 images with values 0..16, no download), scaled to [0, 1], upsampled to 28x28 by
bilinear interpolation (``torch.nn.functional.interpolate``, ``align_corners=False``, in
float64) and standardised by the whole set's mean and standard deviation.

Two models, one of ``convbench.nn`` layers and one of ``torch.nn`` layers (``Linear``,
``ReLU`` and ``Flatten`` are torch's in both), start from the same weights (the torch
model's ``state_dict`` loaded into the other), see the same batches (a seeded order) and
take the same SGD steps. ``compare`` trains both and reports how far they drift;
``step_times`` times one training step of each, interleaved (convbench.timing);
``training_report`` writes the two float32 loss curves overlaid and the step times
(``convbench report --training``).
"""
from __future__ import annotations

import itertools
import math
import os
import time
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convbench.timing import Protocol

BATCH_SIZES = (64, 1000)      # the seed's batch sizes (it trained with 1000)
FEATURES = 6 * 4 * 4          # channels x height x width after the second pool
DTYPES = ("float32", "float64")
SGD = {"lr": 0.05, "momentum": 0.9}
# a step takes ~5-100 ms: samples of >= 0.1 s, 15 of them, interleaved
STEP_PROTOCOL = Protocol(warmup_s=0.2, sample_s=0.1, samples=15)


def _torch_dtype(dtype):
    import torch

    name = getattr(dtype, "name", None) or str(dtype).replace("torch.", "")
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES} (or the torch dtype), got {dtype!r}")
    return getattr(torch, name)


def _count(value, name: str, least: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
        raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")
    return int(value)


def digits(dtype="float32", size: int = 28):
    """(images (1797, 1, size, size), labels (1797,) int64) as torch tensors: the bundled
    digits, bilinearly upsampled from 8x8 and standardised (module docstring)."""
    import torch
    import torch.nn.functional as F
    from sklearn.datasets import load_digits

    dtype = _torch_dtype(dtype)
    size = _count(size, "size", 8)
    bunch = load_digits()
    x = torch.from_numpy(bunch.images / 16.0).unsqueeze(1)          # float64, [0, 1]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = (x - x.mean()) / x.std()
    return x.to(dtype).contiguous(), torch.from_numpy(bunch.target).to(torch.int64)


def convbench_layers():
    """The ``convbench.nn`` namespace (imported here: it loads torch)."""
    import convbench.nn

    return convbench.nn


def seed_cnn(layers=None, dtype="float32"):
    """The seed CNN as a ``torch.nn.Sequential``; ``layers`` supplies ``Conv2d`` and
    ``MaxPool2d`` (default ``convbench.nn``; pass ``torch.nn`` for the peer). Weights are
    drawn from torch's global generator, as any torch.nn model's are."""
    import torch.nn as tnn

    layers = convbench_layers() if layers is None else layers
    for name in ("Conv2d", "MaxPool2d"):
        if not hasattr(layers, name):
            raise TypeError(f"layers must provide Conv2d and MaxPool2d (like torch.nn), "
                            f"got {layers!r} without {name}")
    model = tnn.Sequential(
        layers.Conv2d(1, 3, 3), tnn.ReLU(),
        layers.Conv2d(3, 3, 3), tnn.ReLU(),
        layers.MaxPool2d(2),
        layers.Conv2d(3, 6, 3), tnn.ReLU(),
        layers.Conv2d(6, 6, 3), tnn.ReLU(),
        layers.MaxPool2d(2),
        tnn.Flatten(),
        tnn.Linear(FEATURES, 30), tnn.ReLU(),
        tnn.Linear(30, 10),
    )
    return model.to(_torch_dtype(dtype))


def twin_models(dtype="float32", seed: int = 0, layers=None):
    """{"convbench.nn": model, "torch.nn": model}: the torch.nn model initialised from
    ``seed``, its state_dict loaded unchanged into the ``layers`` (convbench.nn) one."""
    import torch

    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        peer = seed_cnn(torch.nn, dtype)
        ours = seed_cnn(layers, dtype)    # its own initialisation draws too
    finally:  # the caller's random stream goes on as if nothing was drawn
        torch.random.set_rng_state(generator_state)
    ours.load_state_dict(peer.state_dict())
    return {"convbench.nn": ours, "torch.nn": peer}


def batch_order(count: int, batch_size: int, steps: int, seed: int = 0) -> list[np.ndarray]:
    """Index arrays of ``steps`` batches: seeded shuffles of ``range(count)``, one per
    epoch, cut into full batches (an epoch's remainder is dropped)."""
    count, batch_size = _count(count, "count"), _count(batch_size, "batch_size")
    steps = _count(steps, "steps", 0)
    if batch_size > count:
        raise ValueError(f"batch_size must be <= the {count} images, got {batch_size}")
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    while len(out) < steps:
        order = rng.permutation(count)
        out.extend(order[i:i + batch_size] for i in range(0, count - batch_size + 1, batch_size))
    return out[:steps]


def make_batches(x, y, batch_size: int, steps: int, seed: int = 0) -> list[tuple]:
    """``steps`` (images, labels) batches, gathered once (contiguous) so a timed step does
    no indexing."""
    import torch

    return [(x[torch.from_numpy(i)].contiguous(), y[torch.from_numpy(i)])
            for i in batch_order(len(x), batch_size, steps, seed)]


def make_step(model, optimizer):
    """A function of one batch doing one training step (cross-entropy, backward, SGD);
    it returns the loss (detached)."""
    import torch.nn.functional as F

    def step(images, labels):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def optimizer_for(model):
    import torch

    return torch.optim.SGD(model.parameters(), **SGD)


@dataclass
class Comparison:
    """Two models trained side by side: their losses per step and how far apart their
    parameters ended (largest |a - b| / max|b| over the parameter tensors)."""
    dtype: str
    losses: dict[str, list[float]] = field(default_factory=dict)
    parameter_difference: float = math.nan
    models: dict = field(default_factory=dict, repr=False)


def parameter_difference(a, b) -> float:
    """max over parameter tensors of max|a - b| / max|b| (state_dicts of equal keys)."""
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        raise ValueError(f"the models' state_dict keys differ: {sorted(sa)} vs {sorted(sb)}")
    worst = 0.0
    for key, want in sb.items():
        if not want.is_floating_point():
            continue
        scale = float(want.abs().max()) or 1.0
        worst = max(worst, float((sa[key] - want).abs().max()) / scale)
    return worst


def compare(dtype="float64", steps: int = 20, batch_size: int = 64, seed: int = 0,
            layers=None, data=None) -> Comparison:
    """Train the twin models (``twin_models``) for ``steps`` SGD steps on the same batches;
    ``data``: (images, labels) in ``dtype`` (default ``digits(dtype)``)."""
    dtype = _torch_dtype(dtype)
    x, y = digits(dtype) if data is None else data
    models = twin_models(dtype, seed, layers)
    batches = make_batches(x, y, batch_size, steps, seed)
    result = Comparison(str(dtype).replace("torch.", ""), models=models)
    for name, model in models.items():
        step = make_step(model, optimizer_for(model))
        result.losses[name] = [float(step(images, labels)) for images, labels in batches]
    result.parameter_difference = parameter_difference(models["convbench.nn"], models["torch.nn"])
    return result


def step_functions(batch_size: int, seed: int = 0, layers=None, data=None) -> dict:
    """{"convbench.nn": f, "torch.nn": f}: each call of f is one float32 training step of
    that twin model on the next batch of the same seeded cycle (two epochs long)."""
    x, y = digits("float32") if data is None else data
    batches = make_batches(x, y, batch_size, math.ceil(len(x) / batch_size) * 2, seed)
    fns = {}
    for name, model in twin_models("float32", seed, layers).items():
        step, cycle = make_step(model, optimizer_for(model)), itertools.cycle(batches)
        fns[name] = lambda step=step, cycle=cycle: step(*next(cycle))
    return fns


def step_times(batch_sizes=BATCH_SIZES, protocol=None, threads: int | None = None,
               seed: int = 0, layers=None, data=None) -> list[dict]:
    """One float32 training step of each model, timed interleaved (convbench.timing), per
    batch size: rows {"batch", "convbench_s", "torch_s", "ratio", "timings"} (medians in
    seconds; ratio convbench over torch). Each model cycles through its own copy of the
    same batches; both start from the same weights."""
    import torch

    from convbench.thread_settings import threads as thread_count
    from convbench.timing import measure

    protocol = STEP_PROTOCOL if protocol is None else protocol
    data = digits("float32") if data is None else data
    rows = []
    with thread_count(threads, libraries=("torch",)), torch.autograd.set_grad_enabled(True):
        for batch in batch_sizes:
            batch = _count(batch, "batch_sizes")
            timings = measure(step_functions(batch, seed, layers, data), protocol)
            ours, peer = timings["convbench.nn"].median, timings["torch.nn"].median
            rows.append({"batch": batch, "convbench_s": ours, "torch_s": peer,
                         "ratio": ours / peer, "threads": torch.get_num_threads(),
                         "timings": timings})
    return rows


def step_table(rows: list[dict]) -> str:
    """The step times as a Markdown table (milliseconds)."""
    lines = ["| batch | threads | convbench.nn step (ms) | torch.nn step (ms) | ratio |",
             "| --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['threads']} | {r['convbench_s'] * 1e3:.3f} | "
                     f"{r['torch_s'] * 1e3:.3f} | {r['ratio']:.2f} |")
    return "\n".join(lines)


def loss_plot(comparison: Comparison, path: Path, batch_size: int) -> Path:
    """The two loss curves overlaid (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, losses), style in zip(comparison.losses.items(), ("-", "--")):
        ax.plot(range(1, len(losses) + 1), losses, style, lw=1.2, label=name)
    ax.set_xlabel("SGD step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_yscale("log")
    ax.set_title(f"seed CNN on the bundled digits (28x28), {comparison.dtype}, batch {batch_size}\n"
                 f"parameters at the end differ by up to {comparison.parameter_difference:.1e} "
                 "of their scale (roundings grow in training)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def training_report(out_dir, steps: int = 300, batch_size: int = 64, batch_sizes=BATCH_SIZES,
                    protocol=None, threads: int | None = None) -> tuple[list[Path], str]:
    """Train both float32 models for ``steps`` steps and time a step at ``batch_sizes``,
    with ``threads`` threads (None: every core);
    writes ``training_loss.png`` and ``training.md`` into ``out_dir``. Returns the paths
    written and the text printed (the step table and the final losses)."""
    import torch

    from convbench import results
    from convbench.machine import metadata
    from convbench.thread_settings import threads as thread_count

    out_dir = Path(out_dir)
    steps, batch_size = _count(steps, "steps"), _count(batch_size, "batch_size")
    results.check_writable(out_dir, "report folder", folder=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = digits("float32")
    with thread_count(threads, libraries=("torch",)):
        comparison = compare("float32", steps, batch_size, data=data)
    rows = step_times(batch_sizes, protocol, threads, data=data)
    png = loss_plot(comparison, out_dir / "training_loss.png", batch_size)
    final = ", ".join(f"{name} {losses[-1]:.4f}" for name, losses in comparison.losses.items())
    text = (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {metadata()['cpu']}, "
            f"{os.cpu_count()} cores, torch {torch.__version__}\n\n"
            f"seed CNN, float32, {steps} SGD steps of batch {batch_size} "
            f"(lr {SGD['lr']}, momentum {SGD['momentum']}): final loss {final}; largest "
            f"parameter difference {comparison.parameter_difference:.1e}\n\n"
            "One training step (forward, cross-entropy, backward, SGD), medians of "
            "interleaved samples:\n\n" + step_table(rows))
    md = out_dir / "training.md"
    results.write_atomic(md, "# The seed CNN: convbench.nn against torch.nn\n\n" + text + "\n")
    return [png, md], text
