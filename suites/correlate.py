"""asv benchmarks of the image-form ops, correlate and convolve (classes from grid.json:
``Correlate.time_correlate``, ``CorrelatePeakmem.peakmem_correlate``, ``Convolve...``),
and ``Environment.track_gpus`` recording the GPU, driver and CUDA builds."""
from suites import benchmark_classes, gpu_count, gpu_description

globals().update(benchmark_classes("correlate", __name__))


class Environment:
    """The machine's GPUs as a parameter: asv's machine.json has no GPU field."""

    params = [[gpu_description()]]
    param_names = ["gpu"]
    unit = "GPUs"

    def track_gpus(self, gpu):
        return gpu_count()
