"""How often synthesized Maestro failures race between engines, with and without ``--race-margin``.

    python benchmarks/bench_maestro_races.py [--seeds 10] [--margins 0,120] [--failure-rate 0.05]
        [--engines legacy,actor] [--skip sample-nested-subworkflow-foreach-wf] [--corpora DIR]

Imports every Maestro sample of ``../shared/corpora/maestro`` once per outcome-model seed and margin,
replays each trace that draws at least one failure on two engines (replay seed 1) and counts the
traces whose launched attempts (path, attempt, status) or run status differ: with a race-free trace
the engines may differ in timing only. ``diverging_untagged`` counts those the importer did not tag
``race-margin-unmet:*`` (with a margin this should be 0). Prints one line per diverging trace, then (last line) one JSON
object per margin: traces with a failure, diverging traces, and which. The costly sample (27 s per
legacy replay) is skipped by default.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CORPORA = ROOT.parent / "shared" / "corpora"


def _engine(name: str) -> Any:
    if name == "legacy":
        from engines.legacy import LegacyEngine

        return LegacyEngine()
    if name == "actor":
        from engines.actor import ActorEngine

        return ActorEngine()
    if name == "oracle":
        from engines.core.oracle import CoreOracle

        return CoreOracle()
    raise SystemExit(f"unknown engine {name!r} (legacy, actor, oracle)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="outcome-model seeds 0..N-1")
    parser.add_argument("--margins", default="0,120", help="comma-separated --race-margin values")
    parser.add_argument("--failure-rate", type=float, default=0.05)
    parser.add_argument("--engines", default="legacy,actor", help="two of legacy, actor, oracle")
    parser.add_argument(
        "--skip", default="sample-nested-subworkflow-foreach-wf", help="substring of files to skip"
    )
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA)
    args = parser.parse_args(argv)
    folder = args.corpora / "maestro"
    if not folder.is_dir():
        print(json.dumps({"error": f"real corpora not found at {folder}"}))
        return 1
    from corpora.importers import IMPORTERS, ImportOptions, run_import
    from corpora.model import Outcome
    from engines.api import ReplayOptions

    first, second = args.engines.split(",")
    files = [p for p in IMPORTERS["maestro"].discover([folder]) if not (args.skip and args.skip in p.name)]
    summary: dict[str, Any] = {
        "engines": [first, second],
        "seeds": args.seeds,
        "failure_rate": args.failure_rate,
    }
    for margin in (float(m) for m in args.margins.split(",")):
        with_failure, diverging, untagged = 0, [], []
        for seed in range(args.seeds):
            options = ImportOptions(seed=seed, failure_rate=args.failure_rate, race_margin=margin)
            for item in run_import(IMPORTERS["maestro"], files, options):
                trace = item.trace
                if trace is None or all(a.outcome is Outcome.SUCCEEDED for a in trace.runs[0].attempts):
                    continue
                with_failure += 1
                runs = [_engine(e).replay(trace, ReplayOptions(seed=1)).runs[0] for e in (first, second)]
                launched = [
                    (r.status, sorted((a.path, a.attempt, a.status) for a in r.attempts)) for r in runs
                ]
                if launched[0] != launched[1]:
                    only = sorted(set(launched[1][1]) - set(launched[0][1]))[:3]
                    name = f"{trace.trace_id.rsplit('__', 1)[-1]}@seed{seed}"
                    diverging.append(name)
                    if not any(t.startswith("race-margin-unmet:") for t in trace.metadata.tags):
                        untagged.append(name)
                    print(
                        json.dumps(
                            {"margin": margin, "trace": trace.trace_id, "seed": seed, f"{second}_only": only}
                        ),
                        flush=True,
                    )
        summary[f"margin_{margin:g}"] = {
            "traces_with_failure": with_failure,
            "diverging": len(diverging),
            "diverging_untagged": len(untagged),
            "which": diverging,
        }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
