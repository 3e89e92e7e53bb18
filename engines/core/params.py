"""Workflow and step params (MAESTRO-SEMANTICS §9): what each attempt is handed.

Workflow params = system defaults derived from the run's *trigger time* (never the wall clock), then
the definition's params, then the run's params (later wins). Step params = the reserved ids, the
type defaults, the step definition's params, then ``maestro_step_satisfied``.

Evaluation: a literal string interpolates ``$x`` / ``${x}``; an ``expression`` is evaluated with
:mod:`engines.core.expr`. A name resolves, in this order, to ``stepid__name`` (an upstream completed
step's output, or its evaluated param), a step param (evaluated on demand, with cycle detection), a
workflow param; anything else is a :class:`ParamError`, which makes the step INTERNALLY_FAILED.
"""

from __future__ import annotations

import datetime as _dt
import uuid
import zoneinfo
from collections.abc import Callable, Mapping
from hashlib import sha1 as _sha1

from corpora.model import Param, WorkflowDefinition
from engines.core.durations import interpolate
from engines.core.errors import ExpressionError, ParamError
from engines.core.expr import Expression, Value, parse

__all__ = [
    "RESERVED_STEP_PARAMS",
    "Upstream",
    "evaluate_params",
    "step_instance_uuid",
    "system_workflow_params",
    "workflow_params",
]

RESERVED_STEP_PARAMS = (
    "workflow_instance_id",
    "step_id",
    "step_attempt_id",
    "step_instance_uuid",
    "step_instance_id",
)
_PACIFIC = zoneinfo.ZoneInfo("US/Pacific")
_URL_NS = uuid.NAMESPACE_URL.bytes

Upstream = Callable[[str, str], Value]
"""``upstream(step_id, name)``: an upstream completed step's output or param; raises KeyError if none."""


def step_instance_uuid(trace_id: str, run_id: str, path: str, attempt: int) -> str:
    """The deterministic per-attempt UUID every engine hands to the runtime (cross-team contract).

    Exactly ``str(uuid.uuid5(uuid.NAMESPACE_URL, name))``, computed without building a ``UUID``
    (once per attempt; the tests compare it with :func:`uuid.uuid5`)."""
    b = bytearray(_sha1(_URL_NS + f"shadow:{trace_id}/{run_id}/{path}/{attempt}".encode()).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50  # version 5
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = b.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def _date(d: _dt.datetime) -> str:
    return d.strftime("%Y%m%d")


def system_workflow_params(
    definition: WorkflowDefinition, trigger_time: float, owner: str
) -> dict[str, Value]:
    """Maestro's default workflow params, derived from ``trigger_time`` (epoch seconds), in UTC
    unless the name says Pacific (``LOCAL_RUN_DATE`` and the ``*_PT`` variants)."""
    utc = _dt.datetime.fromtimestamp(trigger_time, tz=_dt.UTC)
    pt = utc.astimezone(_PACIFIC)
    day, hour = _dt.timedelta(days=1), _dt.timedelta(hours=1)
    return {
        "RUN_TS": round(trigger_time * 1000),
        "RUN_DATE": _date(utc),
        "RUN_DATE_MINUS_1": _date(utc - day),
        "RUN_DATE_MINUS_7": _date(utc - 7 * day),
        "TARGET_RUN_DATE": _date(utc),
        "TARGET_RUN_HOUR": utc.strftime("%H"),
        "LOCAL_RUN_DATE": _date(pt),
        "DERIVED_RUN_TS": round(trigger_time * 1000),
        "DERIVED_RUN_DATE_UTC": _date(utc),
        "DERIVED_RUN_DATE_UTC_MINUS_1": _date(utc - day),
        "DERIVED_RUN_DATE_UTC_PLUS_1": _date(utc + day),
        "DERIVED_RUN_HOUR_UTC": utc.strftime("%Y%m%d%H"),
        "DERIVED_RUN_HOUR_UTC_MINUS_1": (utc - hour).strftime("%Y%m%d%H"),
        "DERIVED_RUN_HOUR_UTC_PLUS_1": (utc + hour).strftime("%Y%m%d%H"),
        "DERIVED_RUN_DATE_PT": _date(pt),
        "DERIVED_RUN_DATE_PT_MINUS_1": _date(pt - day),
        "DERIVED_RUN_DATE_PT_PLUS_1": _date(pt + day),
        "DERIVED_RUN_HOUR_PT": pt.strftime("%Y%m%d%H"),
        "DSL_DEFAULT_TZ": "US/Pacific",
        "WORKFLOW_CRON_TIMEZONE": "UTC",
        "owner": owner,
        "workflow_id": definition.id,
    }


def _literal(value: object, resolve: Callable[[str], Value]) -> Value:
    """A literal param value; strings (also inside lists and maps) interpolate ``$x``."""
    if isinstance(value, str):
        if "$" not in value:
            return value
        return interpolate(value, _LazyParams(resolve))
    if isinstance(value, list):
        return [_literal(v, resolve) for v in value]
    if isinstance(value, dict):
        return {str(k): _literal(v, resolve) for k, v in value.items()}
    assert value is None or isinstance(value, bool | int | float)
    return value


class _LazyParams(Mapping[str, Value]):
    """A mapping view over a resolver, so :func:`interpolate` can look names up on demand."""

    def __init__(self, resolve: Callable[[str], Value]) -> None:
        self._resolve = resolve

    def __getitem__(self, key: str) -> Value:
        try:
            return self._resolve(key)
        except ParamError as exc:
            raise KeyError(key) from exc

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            self._resolve(key)
        except ParamError:
            return False
        return True

    def __iter__(self):  # type: ignore[no-untyped-def]  # never iterated: interpolation only looks names up
        return iter(())

    def __len__(self) -> int:
        return 0


_PLAIN: dict[int, tuple[Mapping[str, Param], bool]] = {}


def _plain_literals(defs: Mapping[str, Param]) -> bool:
    """True when every param of ``defs`` is a literal with no ``$`` anywhere (remembered per
    definition mapping, which is held so its id stays valid): its value is then the literal itself."""
    hit = _PLAIN.get(id(defs))
    if hit is not None and hit[0] is defs:
        return hit[1]
    plain = all(p.expression is None and "$" not in repr(p.value) for p in defs.values())
    if len(_PLAIN) >= 4096:
        _PLAIN.clear()
    _PLAIN[id(defs)] = (defs, plain)
    return plain


def _no_names(name: str) -> Value:  # pragma: no cover - a plain literal reads no name
    raise ParamError("is not defined", param=name)


def evaluate_params(
    defs: Mapping[str, Param],
    *,
    base: Mapping[str, Value],
    fixed: Mapping[str, Value] | None = None,
    fallback: Mapping[str, Value] | None = None,
    upstream: Upstream | None = None,
    expressions: Mapping[str, Expression] | None = None,
) -> dict[str, Value]:
    """Evaluate ``defs`` into values.

    ``base`` are values already known at the same level (they are in the result and may be overridden
    by ``defs``); ``fixed`` override ``defs`` (run params over definition params); ``fallback`` is the
    outer level (workflow params for a step), read but not returned; ``upstream`` reads
    ``stepid__name``. Raises :class:`ParamError` naming the param for any problem."""
    fixed = fixed or {}
    fallback = fallback or {}
    done: dict[str, Value] = dict(base)
    done.update(fixed)
    if _plain_literals(defs):  # no expression, no ``$``: nothing to resolve, no order to respect
        for name, p in defs.items():
            if name not in fixed:
                done[name] = _literal(p.value, _no_names)
        return done
    pending = [name for name in defs if name not in fixed]
    visiting: list[str] = []
    # compute reads resolve through this list, emptied at the end: two closures naming each other
    # would be a reference cycle only the garbage collector frees (CoreOracle replays without it)
    resolver: list[Callable[[str], Value]] = []

    def resolve(name: str) -> Value:
        if name in pending_set:
            return compute(name)
        if name in done:
            return done[name]
        if upstream is not None and "__" in name:
            sid, _, out = name.partition("__")
            try:
                return upstream(sid, out)
            except KeyError:
                raise ParamError(
                    f"step {sid!r} is not an upstream completed step with output or param {out!r}", param=name
                ) from None
        if name in fallback:
            return fallback[name]
        raise ParamError(
            "is not defined (no upstream output, step param or workflow param of that name)", param=name
        )

    def compute(name: str) -> Value:
        if name in visiting:
            chain = " -> ".join([*visiting[visiting.index(name) :], name])
            raise ParamError(f"params reference each other in a cycle ({chain})", param=name)
        visiting.append(name)
        p = defs[name]
        try:
            if p.expression is not None:
                expr = expressions.get(name) if expressions else None
                value = (expr or parse(p.expression)).evaluate(resolver[0])
            else:
                value = _literal(p.value, resolver[0])
        except ExpressionError as exc:
            raise ParamError(str(exc), param=name) from exc
        except KeyError as exc:
            raise ParamError(f"unknown name {exc.args[0]!r}", param=name) from exc
        visiting.pop()
        done[name] = value
        pending_set.discard(name)
        return value

    pending_set = set(pending)
    resolver.append(resolve)
    try:
        for name in pending:
            if name in pending_set:
                compute(name)
    finally:
        resolver.clear()
    return done


def workflow_params(
    definition: WorkflowDefinition,
    *,
    trigger_time: float,
    owner: str,
    run_params: Mapping[str, Value],
    expressions: Mapping[str, Expression] | None = None,
) -> dict[str, Value]:
    """The evaluated workflow params of a run: system defaults < definition params < run params."""
    return evaluate_params(
        definition.params,
        base=system_workflow_params(definition, trigger_time, owner),
        fixed=run_params,
        expressions=expressions,
    )
