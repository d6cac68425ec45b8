"""asv benchmarks of dispatch: each public function on tiny inputs beside the candidate it
runs and the peers a user would call instead (convbench.dispatch lists the calls).
``track_overhead`` is the median over interleaved samples of (convbench - candidate)."""
from convbench import dispatch
from convbench.timing import Protocol, measure


class Dispatch:
    params = [[call.name for call in dispatch.CALLS], list(dispatch.LIBRARIES)]
    param_names = ["call", "arrays"]
    timeout = 120

    def setup(self, call, arrays):
        self.fns, _ = dispatch.callables(dispatch.by_name(call), arrays)

    def time_convbench(self, call, arrays):
        self.fns["convbench"]()

    def time_candidate(self, call, arrays):
        self.fns["candidate"]()

    def track_overhead(self, call, arrays):
        import statistics

        pair = {name: self.fns[name] for name in ("convbench", "candidate")}
        timings = measure(pair, Protocol(warmup_s=0.05, sample_s=0.004, samples=31))
        return 1e6 * statistics.median(
            a - b for a, b in zip(timings["convbench"].samples, timings["candidate"].samples))

    track_overhead.unit = "us"
