"""Peak extra memory of one candidate call, measured in a fresh process.

The child builds the case's inputs, makes one call (imports, thread pools, plans and
caches settle: the steady state is what a caller in a loop sees), frees its result, resets
the kernel's high-water mark (/proc/self/clear_refs), makes a second call, and reports
VmHWM minus the resident size before it, minus the output's own bytes: what the
algorithm needed beyond its inputs and its result. Linux only.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

_CHILD = r"""
import json, sys
from convbench import registry
from convbench.cases import suite
from convbench import verification as v
from convbench.thread_settings import libraries_of, threads

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024

op, name, suite_name, case_id, n_threads = sys.argv[1:6]
case = next(c for c in suite(suite_name, op) if c.id == case_id)
candidate = registry.get(op, name)
with threads(int(n_threads), libraries=libraries_of([candidate])):
    native = v.native_inputs(candidate, case)
    spec = case.spec
    out_bytes = spec.operation.memory_parts(spec)["output"]    # bfloat16 too
    out = v.call(candidate, case, native)
    del out
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    out = v.call(candidate, case, native)
    peak = status("VmHWM")
print(json.dumps({"extra": peak - before - out_bytes, "output": out_bytes}))
"""


def peak_extra_bytes(op: str, candidate: str, suite_name: str, case_id: str, threads: int = 2,
                     timeout: float = 600) -> dict:
    """{'extra': bytes beyond inputs and output, 'output': output bytes} of one call."""
    # a fixed mmap threshold: glibc then returns every large block to the system when it is
    # freed, so the resident size before the second call holds only what is still alive
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    done = subprocess.run([sys.executable, "-c", _CHILD, op, candidate, suite_name, case_id,
                           str(threads)], capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe of {candidate} on {case_id} failed: {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
