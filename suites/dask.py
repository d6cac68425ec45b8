"""asv benchmarks of dask arrays: convbench beside dask-image's ndfilters on one
LocalCluster of worker processes and the same chunks (convbench.dask_arrays.bench lists the
calls: a 15x15 correlate and a sigma-5 Gaussian on a 4096x4096 float32 image in 1024
chunks). Each call is verified at sampled points against the oracle in setup; a call that
fails is not timed."""
import numpy as np

from convbench.dask_arrays import bench


class DaskFilters:
    params = [[call.name for call in bench.CALLS], list(bench.LIBRARIES)]
    param_names = ["call", "library"]
    timeout = 600
    number, repeat, warmup_time = 1, (1, 7, 300.0), 0

    def setup(self, call, library):
        call = bench.by_name(call)
        self.cluster, self.client = bench.start_cluster()
        x = bench.image(self.client)
        self.y = bench.lazy(call, library, x)
        bench.run(self.client, self.y)                    # imports, plans, compilation
        points = bench.sample_points(bench.SHAPE, bench.halo(call), bench.CHUNK)
        rows, cols = (np.array(a) for a in zip(*points))
        got = self.y.vindex[rows, cols].compute()
        ok, detail = bench.verify(call, x.compute(), dict(zip(points, got.tolist())))
        if not ok:
            self.teardown(call.name, library)
            raise ValueError(f"{call.name} by {library} failed verification: {detail}")

    def teardown(self, call, library):
        self.client.close()
        self.cluster.close()

    def time_call(self, call, library):
        bench.run(self.client, self.y)
