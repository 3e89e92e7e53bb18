"""Guard for core optimizations: CoreOracle records must stay byte-identical.

    python benchmarks/check_core_records.py save  [--count 200] [--seed 7] [--file out/core-records.json]
    python benchmarks/check_core_records.py check [--count 200] [--seed 7] [--file out/core-records.json]

``save`` replays ``count`` generated traces (plain and with ``reload_state=True``, the legacy engine's
JSON round trip) and stores a SHA-256 of each record's canonical JSON (counters included, since the
number of ``execute``/``decide`` calls is part of what an optimization must not change). ``check``
recomputes them and lists every trace whose record changed; exit 1 if any did. Run ``save`` on the
code before a change, ``check`` after it. A performance change that alters a record is a semantic change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from corpora.generator import generate_corpus
from engines.api import ReplayOptions
from engines.core.oracle import CoreOracle

__all__ = ["digests", "main"]


MODES = ("plain", "reload")


def digests(seed: int, count: int, modes: Sequence[str] = MODES) -> dict[str, str]:
    """``{"<trace_id>/<mode>": sha256}`` for the first ``count`` traces of the corpus for ``seed``."""
    every = {"plain": CoreOracle(), "reload": CoreOracle(reload_state=True)}
    engines = {m: every[m] for m in modes}
    out: dict[str, str] = {}
    for trace in generate_corpus(seed, count):
        for mode, engine in engines.items():
            record = engine.replay(trace, ReplayOptions())
            text = json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            out[f"{trace.trace_id}/{mode}"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return out


def current_modes(current: dict[str, str]) -> set[str]:
    return {k.rsplit("/", 1)[-1] for k in current}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["save", "check"])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--file", type=Path, default=Path("out/core-records.json"))
    parser.add_argument("--modes", default=",".join(MODES), help="plain, reload (slow on 2,000-step DAGs)")
    args = parser.parse_args(argv)
    current = digests(args.seed, args.count, args.modes.split(","))
    if args.action == "save":
        args.file.parent.mkdir(parents=True, exist_ok=True)
        args.file.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"saved {len(current)} record digests -> {args.file}")
        return 0
    if not args.file.is_file():
        print(f"no saved digests at {args.file}: run 'save' on the code before the change", file=sys.stderr)
        return 2
    saved: dict[str, str] = json.loads(args.file.read_text(encoding="utf-8"))
    saved = {k: v for k, v in saved.items() if k.rsplit("/", 1)[-1] in current_modes(current)}
    changed = sorted(k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k))
    for key in changed:
        print(f"CHANGED {key}: {saved.get(key, '-')[:12]} -> {current.get(key, '-')[:12]}")
    print(f"{len(current) - len(changed)}/{len(current)} records identical")
    return 1 if changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
