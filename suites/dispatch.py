"""asv benchmarks of dispatch: each public function on tiny inputs beside the candidate it
runs and the peers a user would call instead (convbench.dispatch lists the calls).
``Dispatch.time_call`` times one of them per parameter set (peers once, on numpy arrays:
they are called the same way for either); ``DispatchOverhead.track_overhead`` is
convbench.dispatch.dispatch_overhead: what a call adds to its candidate, in microseconds."""
from convbench import dispatch

PEERS = sorted({peer for call in dispatch.CALLS for peer in call.peers})


class Dispatch:
    params = [[call.name for call in dispatch.CALLS], list(dispatch.LIBRARIES),
              ["convbench", "candidate", *PEERS]]
    param_names = ["call", "arrays", "function"]
    timeout = 120

    def setup(self, call, arrays, function):
        call = dispatch.by_name(call)
        if function in PEERS and (function not in call.peers or arrays != "numpy"):
            raise NotImplementedError(f"{function} is not a peer timed for {call.name} "
                                      f"on {arrays} arrays")
        fns, _ = dispatch.callables(call, arrays)
        self.fn = fns[function]

    def time_call(self, call, arrays, function):
        self.fn()


class DispatchOverhead:
    params = [[call.name for call in dispatch.CALLS], list(dispatch.LIBRARIES)]
    param_names = ["call", "arrays"]
    timeout = 120

    def track_overhead(self, call, arrays):
        return 1e6 * dispatch.dispatch_overhead(dispatch.by_name(call), arrays)

    track_overhead.unit = "us"
