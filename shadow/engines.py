"""Resolve engine names to engine factories, lazily.

The harness reaches engines only through :mod:`engines.api`; this module turns a name given on the
command line (``legacy``, ``actor``, ``oracle``, the name of an installed adapter registered in the
``workflow_shadow.engines`` entry-point group, or any ``module:factory``) into a callable that
builds an :class:`~engines.api.Engine`. Imports are lazy so that a missing optional engine only fails
the command that asks for it, with a message that says what to do.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.api import Engine

__all__ = [
    "BUILTIN_ENGINES",
    "ENTRY_POINT_GROUP",
    "EngineSpec",
    "EngineSpecError",
    "build_engine",
    "installed_engines",
    "resolve_engine",
]

BUILTIN_ENGINES: Mapping[str, str] = {
    "legacy": "engines.legacy:LegacyEngine",
    "actor": "engines.actor:ActorEngine",
    "oracle": "engines.core.oracle:CoreOracle",
}


class EngineSpecError(Exception):
    """An engine name could not be turned into an engine (unknown name, missing module, bad option)."""


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """A picklable description of an engine: its target (``module:factory``) and factory kwargs.

    Worker processes rebuild the engine from the spec, so the spec (never the engine object) crosses
    process boundaries."""

    name: str
    target: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


ENTRY_POINT_GROUP = "workflow_shadow.engines"
"""Installed adapters register here (``[project.entry-points."workflow_shadow.engines"]`` in their
pyproject: ``my-engine = "my_package.engine:make_engine"``) and are then named like a built-in engine."""


def installed_engines() -> dict[str, str]:
    """Adapters installed in this environment: entry-point name -> ``module:factory``."""
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def resolve_engine(name: str, **kwargs: Any) -> EngineSpec:
    """Turn ``legacy|actor|oracle|<installed adapter>|module:factory`` into a spec; fail early if the
    factory is missing."""
    target = BUILTIN_ENGINES.get(name, name)
    if ":" not in target:
        installed = installed_engines()
        if name not in installed:
            known = sorted(BUILTIN_ENGINES) + sorted(installed)
            raise EngineSpecError(
                f"unknown engine {name!r}: use one of {', '.join(known)}, the name of an adapter installed in the "
                f"{ENTRY_POINT_GROUP!r} entry-point group, or 'module:factory' (see examples/adapter.py)"
            )
        target = installed[name]
    spec = EngineSpec(name=name, target=target, kwargs=dict(kwargs))
    factory = _load_factory(spec)
    if kwargs:
        _check_kwargs(spec, factory)
    return spec


def _load_factory(spec: EngineSpec) -> Callable[..., Any]:
    module_name, _, attr = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        local = Path(*module_name.split(".")).with_suffix(".py")
        where = (
            f"; {local} is in the current folder but not on the import path: run with PYTHONPATH=. (the "
            "'shadow' script does not look in the current folder) or install it"
            if local.is_file() and module_name.split(".")[0] not in sys.modules
            else ""
        )
        raise EngineSpecError(
            f"engine {spec.name!r}: cannot import module {module_name!r} ({exc}); "
            f"check the name, or install the package that provides it{where}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise EngineSpecError(
                f"engine {spec.name!r}: module {module_name!r} has no attribute {attr!r}"
            ) from exc
    if not callable(obj):
        raise EngineSpecError(f"engine {spec.name!r}: {spec.target} is not callable")
    return obj  # type: ignore[no-any-return]


def _check_kwargs(spec: EngineSpec, factory: Callable[..., Any]) -> None:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(spec.kwargs) - set(params))
    if unknown:
        raise EngineSpecError(
            f"engine {spec.name!r} ({spec.target}) does not accept option(s) {', '.join(unknown)}; "
            f"it accepts: {', '.join(params) or 'nothing'}"
        )


def build_engine(spec: EngineSpec) -> Engine:
    """Build the engine a spec describes (in the calling process) and check it speaks the protocol."""
    factory = _load_factory(spec)
    try:
        engine = factory(**spec.kwargs)
    except TypeError as exc:
        raise EngineSpecError(
            f"engine {spec.name!r}: factory {spec.target} rejected its options: {exc}"
        ) from exc
    except Exception as exc:  # e.g. a bad fault spec: the engine's own typed error, reported as a bad option
        raise EngineSpecError(
            f"engine {spec.name!r}: {spec.target} could not be built: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(engine, Engine):
        raise EngineSpecError(
            f"engine {spec.name!r}: {spec.target}() returned {type(engine).__name__}, which lacks "
            "name, version or replay(trace, options) from engines/api.py"
        )
    return engine
