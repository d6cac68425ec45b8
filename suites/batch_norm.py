"""asv benchmarks of batch normalisation and its gradient, classes from grid.json:
``BatchNorm.time_batch_norm``, ``BatchNormPeakmem.peakmem_batch_norm``,
``BatchNormGrad.time_batch_norm_grad``."""
from suites import benchmark_classes

globals().update(benchmark_classes("batch_norm", __name__))
