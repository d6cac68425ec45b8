"""asv benchmarks of Gaussian filtering, classes from grid.json: ``Gaussian.time_gaussian``,
``GaussianPeakmem.peakmem_gaussian`` (once the family has cases in the grid)."""
from suites import benchmark_classes

globals().update(benchmark_classes("gaussian", __name__))
