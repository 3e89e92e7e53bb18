"""Step runtimes: what actually "runs" a leaf step attempt, on the injected clock.

An engine decides *when* an attempt starts; a runtime decides what the attempt *did*. In replay the
answer comes from the trace (:class:`ReplayRuntime`): the recorded outcome, outputs and duration,
waited on the virtual clock. In live mode it comes from the world: :class:`NoopRuntime`,
:class:`SleepRuntime`, :class:`ShellRuntime`. A :class:`RuntimeRegistry` maps step types to runtimes
so an engine asks one object for every leaf step.

The replay runtime never invents an attempt: one the trace does not record comes back at once with
``unrecorded=True`` and no outcome, and the engine marks it INTERNALLY_FAILED. It also keeps the
params each attempt was handed, the configuration-parity evidence.

Concurrency: runtimes run on the engine's loop; a runtime object may serve many attempts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from corpora.model import JsonValue, Outcome, RecordedAttempt, StepType, Trace
from engines.api import EngineError
from engines.clock import Clock

__all__ = [
    "AttemptKey",
    "HandedParams",
    "NoopRuntime",
    "ReplayRuntime",
    "RuntimeNotAvailableError",
    "RuntimeRegistry",
    "RuntimeResult",
    "ShellRuntime",
    "SleepRuntime",
    "StepRuntime",
]

AttemptKey = tuple[str, str, int]
"""``(run_id, path, attempt)``: one attempt of one step of one run (attempt is 1-based)."""


@dataclass(frozen=True, slots=True)
class RuntimeResult:
    """What one attempt did. ``outcome`` is None only when ``unrecorded`` (the trace has no answer)."""

    outcome: Outcome | None
    outputs: Mapping[str, JsonValue] = field(default_factory=dict)
    duration: float = 0.0
    unrecorded: bool = False


@dataclass(frozen=True, slots=True)
class HandedParams:
    """The params an engine handed to one attempt, and when (clock time), for configuration parity."""

    run_id: str
    path: str
    attempt: int
    params: Mapping[str, JsonValue]
    at: float


class RuntimeNotAvailableError(EngineError):
    """No runtime can run this step type in this mode (e.g. a KUBERNETES step in live mode)."""


@runtime_checkable
class StepRuntime(Protocol):
    """Runs one leaf step attempt on ``clock`` and reports what it did.

    Cancellation (a STOP, a step timeout enforced by the engine) propagates as CancelledError after
    the runtime has released what it holds (a shell runtime kills its process group)."""

    async def run(
        self, run_id: str, path: str, attempt: int, params: Mapping[str, JsonValue], clock: Clock
    ) -> RuntimeResult: ...


class ReplayRuntime:
    """Answers every attempt from the trace and waits its recorded duration on the clock.

    ``lookup`` is the non-blocking form for engines that compute completion times themselves (the
    legacy engine polls: it needs to know *when* the attempt ends, not to await it); engines using it
    should still call ``record_params`` so parity evidence is complete."""

    def __init__(self, trace: Trace) -> None:
        self._trace_id = trace.trace_id
        self._attempts: dict[AttemptKey, RecordedAttempt] = {}
        for run in trace.runs:
            for recorded in run.attempts:
                self._attempts[(run.run_id, recorded.path, recorded.attempt)] = recorded
        self._handed: dict[AttemptKey, HandedParams] = {}
        self._order: list[AttemptKey] = []

    def lookup(self, run_id: str, path: str, attempt: int) -> RecordedAttempt | None:
        """The recorded attempt, or None when the trace never recorded it. Takes no time."""
        return self._attempts.get((run_id, path, attempt))

    def result_for(self, run_id: str, path: str, attempt: int) -> RuntimeResult:
        """The result ``run`` would return, without waiting: recorded, or ``unrecorded=True``."""
        recorded = self.lookup(run_id, path, attempt)
        if recorded is None:
            return RuntimeResult(outcome=None, unrecorded=True)
        return RuntimeResult(outcome=recorded.outcome, outputs=recorded.outputs, duration=recorded.duration)

    def record_params(
        self, run_id: str, path: str, attempt: int, params: Mapping[str, JsonValue], at: float
    ) -> None:
        """Keep the params handed to an attempt. A second hand-over of the same attempt (a duplicate
        delivery) keeps the first, so parity compares what the attempt first ran with."""
        key = (run_id, path, attempt)
        if key not in self._handed:
            self._handed[key] = HandedParams(run_id, path, attempt, dict(params), at)
            self._order.append(key)

    async def run(
        self, run_id: str, path: str, attempt: int, params: Mapping[str, JsonValue], clock: Clock
    ) -> RuntimeResult:
        self.record_params(run_id, path, attempt, params, clock.now())
        result = self.result_for(run_id, path, attempt)
        if not result.unrecorded and result.duration > 0:
            await clock.sleep(result.duration)
        return result

    def handed_params(self, run_id: str, path: str, attempt: int) -> HandedParams | None:
        return self._handed.get((run_id, path, attempt))

    @property
    def handed(self) -> tuple[HandedParams, ...]:
        """Every hand-over, in the order the engine made them."""
        return tuple(self._handed[key] for key in self._order)

    @property
    def recorded_keys(self) -> frozenset[AttemptKey]:
        return frozenset(self._attempts)


class NoopRuntime:
    """Succeeds at once with no outputs (Maestro's NoOp step)."""

    async def run(
        self, run_id: str, path: str, attempt: int, params: Mapping[str, JsonValue], clock: Clock
    ) -> RuntimeResult:
        return RuntimeResult(outcome=Outcome.SUCCEEDED)


def _number_param(params: Mapping[str, JsonValue], name: str) -> float | str:
    """A non-negative number from ``params[name]`` (number or numeric string), or an error text."""
    raw = params.get(name)
    if isinstance(raw, bool) or raw is None:
        return f"param {name!r} is {raw!r}; set it to a non-negative number of seconds"
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"param {name!r} is {raw!r}, not a number of seconds"
    if value < 0 or value != value:
        return f"param {name!r} is {raw!r}; it must be a non-negative number of seconds"
    return value


class SleepRuntime:
    """Sleeps ``params["sleep_seconds"]`` on the clock, then succeeds.

    A missing or malformed ``sleep_seconds`` is a configuration error no retry can fix, so it ends
    the attempt with ``fatal_error`` and says why in ``outputs["error"]``."""

    async def run(
        self, run_id: str, path: str, attempt: int, params: Mapping[str, JsonValue], clock: Clock
    ) -> RuntimeResult:
        seconds = _number_param(params, "sleep_seconds")
        if isinstance(seconds, str):
            return RuntimeResult(outcome=Outcome.FATAL_ERROR, outputs={"error": seconds})
        started = clock.now()
        await clock.sleep(seconds)
        return RuntimeResult(outcome=Outcome.SUCCEEDED, duration=clock.now() - started)


class ShellRuntime:
    """Runs ``params["command"]`` with ``/bin/sh -c`` as a subprocess.

    Exit 0 -> succeeded, non-zero -> user_error, no exit within the timeout -> timeout (the process
    group is killed). Outputs: ``exit_code``, and the last ``tail_bytes`` of stdout and stderr. The
    timeout is ``params["timeout_seconds"]`` if given, else ``default_timeout``. Every param is
    exported to the command as ``SHADOW_PARAM_<NAME>`` (strings as-is, others as JSON), plus
    ``SHADOW_RUN_ID``, ``SHADOW_STEP_PATH`` and ``SHADOW_ATTEMPT``.

    On a virtual clock the process is tracked (virtual time freezes while it runs); it is meant for
    live mode, where the clock is real."""

    def __init__(
        self, *, default_timeout: float = 3600.0, tail_bytes: int = 4096, cwd: str | None = None
    ) -> None:
        self._default_timeout = default_timeout
        self._tail_bytes = tail_bytes
        self._cwd = cwd

    def _environment(
        self, run_id: str, path: str, attempt: int, params: Mapping[str, JsonValue]
    ) -> dict[str, str]:
        env = dict(os.environ)
        for name, value in params.items():
            key = "SHADOW_PARAM_" + "".join(c if c.isalnum() else "_" for c in name).upper()
            env[key] = value if isinstance(value, str) else json.dumps(value)
        env["SHADOW_RUN_ID"] = run_id
        env["SHADOW_STEP_PATH"] = path
        env["SHADOW_ATTEMPT"] = str(attempt)
        return env

    def _tail(self, data: bytes) -> str:
        return data[-self._tail_bytes :].decode("utf-8", errors="replace")

    async def run(
        self, run_id: str, path: str, attempt: int, params: Mapping[str, JsonValue], clock: Clock
    ) -> RuntimeResult:
        command = params.get("command")
        if not isinstance(command, str) or not command.strip():
            return RuntimeResult(
                outcome=Outcome.FATAL_ERROR,
                outputs={"error": f"param 'command' is {command!r}; set it to a shell command string"},
            )
        timeout = self._default_timeout
        if "timeout_seconds" in params:
            given = _number_param(params, "timeout_seconds")
            if isinstance(given, str):
                return RuntimeResult(outcome=Outcome.FATAL_ERROR, outputs={"error": given})
            timeout = given
        started = clock.now()
        with clock.track():
            proc = await asyncio.create_subprocess_shell(
                command,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                stdin=asyncio.subprocess.DEVNULL,
                env=self._environment(run_id, path, attempt, params),
                cwd=self._cwd,
                start_new_session=True,  # its own process group, so a kill reaches its children
            )
            try:
                async with asyncio.timeout(timeout):
                    stdout, stderr = await proc.communicate()
            except TimeoutError:
                await self._kill(proc)
                return RuntimeResult(
                    outcome=Outcome.TIMEOUT,
                    outputs={
                        "exit_code": None,
                        "error": f"no exit within {timeout:g} s; process group killed",
                    },
                    duration=clock.now() - started,
                )
            except asyncio.CancelledError:
                await self._kill(proc)
                raise
        code = proc.returncode
        return RuntimeResult(
            outcome=Outcome.SUCCEEDED if code == 0 else Outcome.USER_ERROR,
            outputs={"exit_code": code, "stdout": self._tail(stdout), "stderr": self._tail(stderr)},
            duration=clock.now() - started,
        )

    @staticmethod
    async def _kill(proc: asyncio.subprocess.Process) -> None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


class RuntimeRegistry:
    """Which runtime runs which leaf step type. FOREACH and SUBWORKFLOW are never runtimes' business."""

    def __init__(self, runtimes: Mapping[StepType, StepRuntime], *, mode: str) -> None:
        self._runtimes = dict(runtimes)
        self._mode = mode

    @classmethod
    def replay(cls, trace: Trace) -> RuntimeRegistry:
        """Every leaf type answered by one :class:`ReplayRuntime` over ``trace``."""
        runtime = ReplayRuntime(trace)
        return cls({t: runtime for t in StepType if t.is_leaf}, mode="replay")

    @classmethod
    def live(cls, *, shell: ShellRuntime | None = None, others_as_noop: bool = False) -> RuntimeRegistry:
        """NOOP, SLEEP and SHELL run for real; other leaf types (KUBERNETES, HTTP, ...) have no live
        runtime here, unless ``others_as_noop`` (for dry runs of real definitions)."""
        runtimes: dict[StepType, StepRuntime] = {
            StepType.NOOP: NoopRuntime(),
            StepType.SLEEP: SleepRuntime(),
            StepType.SHELL: shell or ShellRuntime(),
        }
        if others_as_noop:
            for t in StepType:
                if t.is_leaf and t not in runtimes:
                    runtimes[t] = NoopRuntime()
        return cls(runtimes, mode="live")

    @property
    def mode(self) -> str:
        return self._mode

    def for_type(self, step_type: StepType, *, step: str | None = None) -> StepRuntime:
        """The runtime for ``step_type``; a typed error naming the step when there is none."""
        runtime = self._runtimes.get(step_type)
        if runtime is None:
            if not step_type.is_leaf:
                why = f"{step_type} steps are run by the engine as child runs, not by a runtime"
            else:
                why = (
                    f"no {self._mode} runtime for step type {step_type}; live mode runs NOOP, SLEEP and SHELL "
                    "(use RuntimeRegistry.live(others_as_noop=True) to dry-run other types)"
                )
            raise RuntimeNotAvailableError(why, step=step)
        return runtime

    def replay_runtime(self) -> ReplayRuntime | None:
        """The replay runtime behind this registry (for params evidence and ``lookup``), if any."""
        for runtime in self._runtimes.values():
            if isinstance(runtime, ReplayRuntime):
                return runtime
        return None
