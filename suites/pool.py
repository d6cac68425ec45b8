"""asv benchmarks of pooling and its gradients, classes from grid.json:
``MaxPool.time_max_pool``, ``MaxPoolPeakmem.peakmem_max_pool``, ``AvgPool...``."""
from suites import benchmark_classes

globals().update(benchmark_classes("pool", __name__))
