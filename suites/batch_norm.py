"""asv benchmarks of batch normalisation and its gradient, classes from grid.json:
``BatchNorm.time_batch_norm``, ``BatchNormPeakmem.peakmem_batch_norm``; and
``ForwardBackward.time_forward_backward``: one training step's batch normalisation,
forward then backward, on the seed-batchnorm workload (10, 100, 224, 224) float32:
fused_numba's batch_norm then batch_norm_grad against torch.nn.BatchNorm2d with
autograd (what a model runs).

``python -m suites.batch_norm`` times the two interleaved in one run (convbench.timing)
and prints the medians and their ratio.
"""
from suites import benchmark_classes

globals().update(benchmark_classes("batch_norm", __name__))

SEED_SHAPE = (10, 100, 224, 224)
IMPLEMENTATIONS = ("fused_numba", "torch.nn.BatchNorm2d")


def forward_backward(implementation: str, shape=SEED_SHAPE, seed: int = 0):
    """A zero-argument function running batch normalisation forward (training: batch
    statistics, running statistics updated) and backward (dx, dweight, dbias) on random
    float32 x and dy of ``shape``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape, dtype=np.float32)
    dy = rng.standard_normal(shape, dtype=np.float32)
    c = shape[1]
    if implementation == "fused_numba":
        from candidates.batch_norm import fused_numba

        rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
        w, b = np.ones(c, np.float32), np.zeros(c, np.float32)

        def ours():
            _, rm[...], rv[...] = fused_numba.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)
            return fused_numba.batch_norm_grad(dy, x, rm, rv, w, True, 1e-5)
        return ours
    if implementation == "torch.nn.BatchNorm2d":
        import torch

        layer = torch.nn.BatchNorm2d(c) if len(shape) == 4 else torch.nn.BatchNorm1d(c)
        tx, tdy = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dy)

        def theirs():
            tx.grad = layer.weight.grad = layer.bias.grad = None
            layer(tx).backward(tdy)
            return tx.grad, layer.weight.grad, layer.bias.grad
        return theirs
    raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")


class ForwardBackward:
    """seed-batchnorm forward + backward (training). setup verifies fused_numba on the
    small cases of both ops first (its timing is never reported for a wrong result)."""

    params = [list(IMPLEMENTATIONS)]
    param_names = ["implementation"]
    timeout = 600

    def setup(self, implementation):
        from suites import _importable_convbench

        _importable_convbench()
        from convbench import registry
        from convbench.cases import suite
        from convbench.verification import verify_candidates

        if implementation == "fused_numba":
            for op in ("batch_norm", "batch_norm_grad"):
                report = verify_candidates([registry.get(op, "fused_numba")], suite("small", op))
                if not report.passed:
                    raise NotImplementedError(f"fused_numba fails verification: {report.summary()}")
        self.call = forward_backward(implementation)
        self.call()

    def time_forward_backward(self, implementation):
        self.call()


def main(threads=None) -> dict:
    """Time both implementations interleaved (convbench.timing, FULL protocol) with
    ``threads`` threads each (None: every core); print and return the medians and ratio."""
    import convbench
    from convbench.timing import FULL, measure

    with convbench.threads(threads, libraries=("torch", "numba")):
        fns = {name: forward_backward(name) for name in IMPLEMENTATIONS}
        for fn in fns.values():
            fn()
        timings = measure(fns, FULL)
    for name, t in timings.items():
        print(f"{name:22s} median {t.median * 1e3:8.1f} ms  IQR {t.iqr * 1e3:6.1f} ms  "
              f"min {t.min * 1e3:8.1f} ms")
    ratio = timings["fused_numba"].median / timings["torch.nn.BatchNorm2d"].median
    print(f"fused_numba / torch.nn.BatchNorm2d (medians): {ratio:.2f}")
    return {"medians": {k: t.median for k, t in timings.items()}, "ratio": ratio}


if __name__ == "__main__":
    main()
