"""The one verify-then-time routine: bench, gate, tune, verify, the asv suites and the
pytest plugin all measure through ``run_cases`` (or, for one prepared call, ``check``).

Per case, every candidate is called once on the case's inputs and its result checked
against the oracle (convbench.verification); a candidate that wrote into its inputs fails
("modified its input x"). Only the ones that pass are timed, all together, interleaved
sample by sample (convbench.timing; GPU candidates with device events, convbench.gpu),
with any ``extra`` workload (the gate's reference) in the same interleaving. A call slower
than ``slow_call_s`` (read after a second call: the first may compile) is reported
"slow" and not sampled.

Isolation (``isolate=True``): the cases run in a worker process. If a candidate aborts,
segfaults, exits, or runs past ``timeout`` seconds, the parent records that candidate's row
("crashed: killed by signal SIGABRT", "timed out after 5 s"), starts a new worker and goes
on with the rest of the case without it (the candidates that had passed are verified again
there: they must be timed in one process). Exceptions inside a call, SystemExit and
KeyboardInterrupt included, fail only their row, with or without isolation.

The worker is a fork of the caller (it starts in milliseconds and sees everything the caller
has, user functions and monkeypatches included) unless a candidate runs on a GPU or uses
torch, triton or CuPy: OpenMP and CUDA cannot be used again in a forked child once the
parent used them, so those runs go to a fresh interpreter (about a second to start,
kept and reused for later runs). The cost of isolation is therefore a fork per run (per
crash) plus pickling each row back: a few milliseconds a case.

Without isolation, the per-call timeout is SIGALRM (verification.time_limit): it stops
Python-level work on the main thread only.
"""
from __future__ import annotations

import atexit
import math
import multiprocessing
import signal
import sys
import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import wait

import numpy as np

from convbench import verification as v
from convbench.cases import Case
from convbench.registry import Candidate
from convbench.thread_settings import requested
from convbench.timing import QUICK, Protocol, Timing, measure

SLOW_CALL_S = 10.0          # a single call slower than this is reported, not sampled
FRESH_LIBRARIES = ("torch", "triton", "cupy")   # never used from a forked worker


@dataclass
class Outcome:
    """One candidate on one case: its verification, and its timing when it passed."""

    status: str
    detail: str = ""
    row: v.Row | None = None            # the verification row (when the call returned)
    first_call: float = math.nan        # seconds of the call that the 'slow' rule read
    transfers: dict = field(default_factory=dict)   # GPU: h2d_s, d2h_s
    timing: Timing | None = None


@dataclass
class Settings:
    protocol: Protocol = field(default_factory=lambda: QUICK)
    slow_call_s: float = SLOW_CALL_S
    timed: bool = True                  # False: verification only
    timeout: float | None = None        # seconds per call; None: verification.CALL_TIMEOUT_S
    alarm: bool = True                  # SIGALRM timeout in the calling process (not isolated)


class Stopped(KeyboardInterrupt):
    """Ctrl-C in the caller: the run stops; ``partial`` holds the outcomes completed."""

    def __init__(self, partial):
        super().__init__("interrupted")
        self.partial = partial


# ----------------------------------------------------------------------- one call


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"raised SystemExit({exc.code!r})" if exc.code is not None else "raised SystemExit()"
    if isinstance(exc, KeyboardInterrupt):
        return "raised KeyboardInterrupt"
    return f"{type(exc).__name__}: {exc}"


class _Guard:
    """Tells a Ctrl-C of the user (re-raised: the run stops) from a KeyboardInterrupt that a
    candidate raised itself (its row fails). Only the main thread receives signals."""

    def __init__(self):
        self.pressed = False

    def __enter__(self):
        self._previous = None
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            import threading

            if threading.current_thread() is threading.main_thread():
                self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _on_sigint(self, signum, frame):
        self.pressed = True
        raise KeyboardInterrupt

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _snapshot(native) -> list[np.ndarray]:
    from convbench import arrays as xp

    return [np.array(xp.to_numpy(a), copy=True) for a in native]


def _modified(case: Case, native, before) -> str | None:
    """The first input whose bits changed during the call (bitwise: NaN payloads too)."""
    from convbench import arrays as xp

    names = case.spec.operation.arrays
    for i, (a, copy) in enumerate(zip(native, before)):
        now = np.ascontiguousarray(xp.to_numpy(a))
        if now.shape != copy.shape or now.tobytes() != np.ascontiguousarray(copy).tobytes():
            return names[i] if i < len(names) else f"#{i}"
    return None


def check(candidate: Candidate, case: Case, native, timeout: float | None = None,
          guard: _Guard | None = None, alarm: bool = True) -> tuple[v.Row, object, float]:
    """Call ``candidate`` once on ``native`` inputs and verify the result: (row, output,
    seconds of the call). An exception in the call fails the row, Ctrl-C excepted."""
    spec = case.spec
    timeout = None if not alarm else v.CALL_TIMEOUT_S if timeout is None else timeout

    def failed(detail):
        return v.Row(spec.op, case.id, candidate.name, "error", detail), None, math.nan

    before = _snapshot(native)
    try:
        started = time.perf_counter()
        with v.time_limit(timeout), np.errstate(all="ignore"):
            out = v.call(candidate, case, native)
        seconds = time.perf_counter() - started
    except BaseException as exc:  # noqa: B036  a candidate's own exit fails its own row
        if isinstance(exc, KeyboardInterrupt) and guard is not None and guard.pressed:
            raise
        return failed(_describe(exc))
    changed = _modified(case, native, before)
    if changed:
        return failed(f"modified its input {changed}")
    try:
        return v.check_output(candidate, case, out), out, seconds
    except Exception as exc:
        return failed(f"result could not be checked: {type(exc).__name__}: {exc}")


# ------------------------------------------------------------------ one case, events


def inputs_problem(case: Case) -> tuple[str, str] | None:
    """(status, reason) when the case's inputs cannot be built here: a missing optional
    package makes its cases "unavailable", anything else is an error of those rows only."""
    from convbench.data import MissingPackage

    try:
        case.arrays()
    except MissingPackage as exc:
        return "unavailable", f"unavailable: {exc}"
    except Exception as exc:
        return "error", f"inputs could not be built: {type(exc).__name__}: {exc}"
    return None


def not_run(case: Case, candidates) -> list[tuple[str, str] | None]:
    """Per candidate: (status, reason) when it is not run on the case (its inputs cannot be
    built here, or verification.skip_reason), else None."""
    problem = inputs_problem(case) if candidates else None
    return [problem or v.skip_reason(c, case) for c in candidates]


def _bind(candidate: Candidate, case: Case, native):
    spec, fn = case.spec, candidate.function()
    if candidate.device == "gpu":     # a gpu.Bound: timed with device events
        from convbench import gpu

        return gpu.bind(candidate, case, native)
    op = spec.operation
    return lambda: op.call(fn, native, spec)


def _case_events(case: Case, candidates: list[Candidate], settings: Settings, extra=None,
                 guard: _Guard | None = None):
    """Yield ('start', i), ('outcome', i, Outcome), ('timing', [i...]), ('timed', {i:
    Timing}, {name: Timing}) for the candidates (indices into ``candidates``)."""
    timed = {}
    problem = inputs_problem(case) if any(c is not None for c in candidates) else None
    if problem:
        for i, candidate in enumerate(candidates):
            if candidate is not None:
                yield ("outcome", i, Outcome(*problem))
        return
    alarm_s = (v.CALL_TIMEOUT_S if settings.timeout is None else settings.timeout) \
        if settings.alarm else None
    for i, candidate in enumerate(candidates):
        if candidate is None:    # its outcome is already known (a crash removed it)
            continue
        yield ("start", i)
        try:
            native = v.native_inputs(candidate, case)
        except Exception as exc:
            yield ("outcome", i, Outcome("error", f"inputs could not be converted: {_describe(exc)}"))
            continue
        row, out, first_call = check(candidate, case, native, settings.timeout, guard,
                                     settings.alarm)
        outcome = Outcome(row.status, row.detail, row, first_call)
        if row.status == "pass" and settings.timed:
            try:
                if candidate.device == "gpu":
                    from convbench import gpu

                    outcome.transfers = gpu.transfers(candidate, case, out)
                # a first call may compile (numba, Triton), autotune or plan: read a second
                if first_call > settings.slow_call_s:
                    yield ("start", i)
                    with v.time_limit(alarm_s):
                        started = time.perf_counter()
                        v.call(candidate, case, native)
                        outcome.first_call = time.perf_counter() - started
                if outcome.first_call > settings.slow_call_s:
                    outcome.status = "slow"
                else:
                    timed[i] = _bind(candidate, case, native)
            except BaseException as exc:  # noqa: B036
                if isinstance(exc, KeyboardInterrupt) and guard is not None and guard.pressed:
                    raise
                outcome = Outcome("error", _describe(exc))
        del out
        yield ("outcome", i, outcome)
    if not timed:   # the extra workload alone is compared with nothing
        return
    yield ("timing", list(timed))
    on_gpu = {i: b for i, b in timed.items() if not callable(b)}
    fns = {("extra", name): fn for name, fn in (extra or {}).items()}
    fns.update({("candidate", i): b for i, b in timed.items() if i not in on_gpu})
    timings = measure(fns, settings.protocol)
    if on_gpu:
        from convbench import gpu

        timings.update({("candidate", i): t for i, t in gpu.measure(
            {i: b for i, b in on_gpu.items()}, settings.protocol).items()})
    yield ("timed", {key[1]: t for key, t in timings.items() if key[0] == "candidate"},
           {key[1]: t for key, t in timings.items() if key[0] == "extra"})


# --------------------------------------------------------------------- the workers


def _needs_fresh_process(candidate: Candidate) -> bool:
    if candidate.fn is not None:
        return False
    try:
        if getattr(candidate.module, "__file__", None) is None:   # built in memory: fork only
            return False
        return candidate.device == "gpu" or candidate.module.LIBRARY in FRESH_LIBRARIES
    except Exception:
        return False


def _candidate_ref(candidate: Candidate):
    """Registry candidates travel as (op, name, module, reused_from); the worker imports."""
    return (candidate.op, candidate.name, candidate.module_path, candidate.reused_from)


def _job_events(job, guard=None):
    """Every event of a job: ('case', k), the case's events tagged with k, ('case_done', k)."""
    cases, candidate_lists, settings, extra_factory = job
    extra = extra_factory() if extra_factory is not None else None
    for k, (case, candidates) in enumerate(zip(cases, candidate_lists)):
        yield ("case", k)
        for event in _case_events(case, candidates, settings, extra, guard):
            yield (event[0], k) + event[1:]
        yield ("case_done", k)


def _forked_main(conn, job) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the parent's to handle
    for event in _job_events(job):
        conn.send(event)
    conn.send(("done",))


def _fresh_main(conn) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from convbench import registry, thread_settings

    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        path, threads, cases, refs, settings, extra_factory = message
        sys.path[:] = path
        lists = [[ref and registry.Candidate(ref[0], ref[1], ref[2], reused_from=ref[3])
                  for ref in case_refs] for case_refs in refs]
        libraries = thread_settings.libraries_of(c for cl in lists for c in cl if c)
        with thread_settings.threads(threads, libraries=libraries):
            for event in _job_events((cases, lists, settings, extra_factory)):
                conn.send(event)
        conn.send(("done",))


class _Worker:
    """One worker process running one job (fork) or a series of jobs (fresh)."""

    def __init__(self, fresh: bool, job):
        if fresh:
            context = multiprocessing.get_context("spawn")
            self.conn, child = context.Pipe()
            self.process = context.Process(target=_fresh_main, args=(child,), daemon=True)
        else:
            context = multiprocessing.get_context("fork")
            self.conn, child = context.Pipe()
            self.process = context.Process(target=_forked_main, args=(child, job), daemon=True)
        self.process.start()
        child.close()
        self.fresh = fresh

    def death(self) -> str:
        self.process.join(1)
        code = self.process.exitcode
        if code is None:
            return "crashed: the worker stopped answering"
        if code < 0:
            try:
                return f"crashed: killed by signal {signal.Signals(-code).name}"
            except ValueError:
                return f"crashed: killed by signal {-code}"
        return f"crashed: the process exited with code {code}"

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


_FRESH: list[_Worker] = []      # the fresh-interpreter worker, reused across runs


def _fresh_worker() -> _Worker:
    if _FRESH and _FRESH[0].process.is_alive():
        return _FRESH[0]
    _FRESH[:] = [_Worker(True, None)]
    return _FRESH[0]


@atexit.register
def _close_fresh() -> None:
    for worker in _FRESH:
        try:
            worker.conn.send(None)
        except (OSError, ValueError):
            pass
        worker.kill()
    _FRESH.clear()


def _timing_budget(n: int, settings: Settings) -> float:
    p = settings.protocol
    return (settings.timeout or v.CALL_TIMEOUT_S) + (n + 1) * (p.max_s + p.warmup_s + 2 * p.samples * p.sample_s)


def _isolated_events(cases, lists, settings: Settings, extra_factory):
    """The events of ``_job_events``, produced in worker processes; a candidate that kills
    its worker or runs past the timeout gets its own error outcome, and the run goes on in
    a new worker with the rest of its case (the candidates that had passed run again)."""
    timeout = v.CALL_TIMEOUT_S if settings.timeout is None else settings.timeout
    settings = replace(settings, alarm=False)     # the parent's deadline is the timeout
    lists = [list(cl) for cl in lists]
    todo, finished = list(range(len(cases))), set()
    while todo:
        job_lists = [lists[g] for g in todo]
        if any(_needs_fresh_process(c) for cl in job_lists for c in cl if c is not None):
            if any(c is not None and c.fn is not None for cl in job_lists for c in cl):
                raise TypeError("user functions cannot share a worker with torch, triton or "
                                "CuPy candidates: verify them apart, or pass isolate=False")
            worker = _fresh_worker()
            worker.conn.send((list(sys.path), requested(), [cases[g] for g in todo],
                              [[c and _candidate_ref(c) for c in cl] for cl in job_lists],
                              settings, extra_factory))
        else:
            worker = _Worker(False, ([cases[g] for g in todo], job_lists, settings, extra_factory))
        g, running, deadline, failure = todo[0], None, None, None
        try:
            while True:
                limit = None if deadline is None else max(deadline - time.monotonic(), 0)
                ready = wait([worker.conn, worker.process.sentinel], timeout=limit)
                if worker.conn in ready:
                    try:
                        event = worker.conn.recv()
                    except (EOFError, OSError):
                        ready = [worker.process.sentinel]
                    else:
                        kind = event[0]
                        if kind == "done":
                            break
                        g = todo[event[1]]
                        if kind == "start":
                            running, deadline = event[2], time.monotonic() + timeout
                            continue
                        if kind == "timing":
                            running = tuple(event[2])
                            deadline = time.monotonic() + _timing_budget(len(running), settings)
                        elif kind == "outcome":
                            running, deadline = None, None
                            if event[3].status != "pass":   # final: not run again after a crash
                                lists[g][event[2]] = None
                        elif kind == "timed":
                            running, deadline = None, None
                        elif kind == "case_done":
                            finished.add(g)
                        if kind != "case":
                            yield (kind, g) + event[2:]
                        continue
                failure = f"timed out after {timeout:g} s" if not ready else worker.death()
                break
        except BaseException:
            worker.kill()
            if worker.fresh:
                _FRESH.clear()
            raise
        if failure is None:
            if not worker.fresh:
                worker.process.join(5)
                worker.conn.close()
            return
        worker.kill()
        if worker.fresh:
            _FRESH.clear()
        pos = todo.index(g)
        if isinstance(running, int):
            yield ("outcome", g, running, Outcome("error", failure))
            lists[g][running] = None
            todo = todo[pos:]             # the rest of the case (and the cases after it)
            continue
        if g not in finished:
            if isinstance(running, tuple):
                for i in running:
                    yield ("outcome", g, i, Outcome(
                        "error", f"{failure} while the passing candidates were timed together"))
            yield ("lost", g, failure)
            yield ("case_done", g)
            finished.add(g)
        todo = todo[pos + 1:]


# ------------------------------------------------------------------------ the routine


def run_cases(cases, candidate_lists, settings: Settings, *, isolate: bool, extra_factory=None,
              on_case_done=None) -> list[tuple[list[Outcome], dict]]:
    """Per case: the Outcome of each candidate of its list (same order) and the extra
    workload's Timing by name (``extra_factory()`` builds {name: zero-argument call}).
    ``on_case_done(k, outcomes)`` is called as each case ends. Ctrl-C raises Stopped with
    the completed cases."""
    results = [([None] * len(cl), {}) for cl in candidate_lists]
    done = []
    guard = _Guard()
    try:
        with guard:
            events = (_isolated_events(cases, candidate_lists, settings, extra_factory) if isolate
                      else _job_events((cases, candidate_lists, settings, extra_factory), guard))
            for event in events:
                kind, k = event[0], event[1]
                outcomes, extras = results[k]
                if kind == "outcome":
                    outcomes[event[2]] = event[3]
                elif kind == "timed":
                    for i, timing in event[2].items():
                        outcomes[i].timing = timing
                    extras.update(event[3])
                elif kind == "lost":
                    for i, o in enumerate(outcomes):
                        if o is None:
                            outcomes[i] = Outcome("error", f"{event[2]} (outside a candidate call)")
                elif kind == "case_done":
                    done.append(results[k])
                    if on_case_done:
                        on_case_done(k, outcomes)
    except KeyboardInterrupt:
        raise Stopped(done) from None
    return results
