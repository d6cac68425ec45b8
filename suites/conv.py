"""asv benchmarks of the layer-form ops (conv, conv_transpose and the gradients), classes
from grid.json: ``Conv.time_conv``, ``ConvPeakmem.peakmem_conv``, ``ConvGradInput...``."""
from suites import benchmark_classes

globals().update(benchmark_classes("conv", __name__))
