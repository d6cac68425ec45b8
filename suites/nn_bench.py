"""asv benchmarks of network layers: each ``convbench.nn`` layer beside the same
``torch.nn`` layer (convbench.nn_bench lists them: the network-layer, pooling and
BatchNorm shapes, N scaled for CPU), forward and forward+backward. setup verifies both
layers against torch's float64 result first and skips (NotImplementedError) with the
reason when either is wrong or convbench.nn lacks the layer."""
from convbench import nn_bench


class Layer:
    params = [[layer.name for layer in nn_bench.all_layers()], list(nn_bench.PEERS),
              ["forward", "forward+backward"]]
    param_names = ["layer", "layers", "direction"]
    timeout = 300

    def setup(self, layer, layers, direction):
        try:
            modules, x, dy, failures = nn_bench.prepare(nn_bench.by_name(layer))
        except nn_bench.Unavailable as exc:
            raise NotImplementedError(str(exc)) from exc
        if failures:
            raise NotImplementedError(f"wrong result, not timed: {failures}")
        self.fn = nn_bench.callables(modules[layers], x, dy)[direction]

    def time_layer(self, layer, layers, direction):
        self.fn()
