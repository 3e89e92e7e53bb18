"""How much CPU the CLI costs before it does anything: `shadow --help` and `shadow corpus validate` of a
3-trace file, against `python -c pass` measured in the same run (issue 19: target <= 0.3 CPU-s each).

    python benchmarks/bench_cli_start.py [--repeat 7]

Each command runs in a fresh interpreter, alternating with the others, ``--repeat`` times; CPU time is the
child's user + system time (resource.getrusage), so the load of a shared machine moves it little. Prints a
table and, last, one JSON line (min and median CPU seconds per command, and the median over `python -c pass`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def _cpu(argv: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7, help="runs of each command (default 7)")
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        corpus = str(Path(tmp) / "three.jsonl")
        subprocess.run(
            [
                python,
                "-m",
                "shadow.cli",
                "corpus",
                "generate",
                "--seed",
                "1",
                "--count",
                "3",
                "--max-steps",
                "50",
                "--quiet",
                "-o",
                corpus,
            ],
            check=True,
            env={**os.environ},
        )
        commands = {
            "python -c pass": [python, "-c", "pass"],
            "shadow --help": [python, "-m", "shadow.cli", "--help"],
            "shadow corpus validate (3 traces)": [
                python,
                "-m",
                "shadow.cli",
                "corpus",
                "validate",
                "--quiet",
                corpus,
            ],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, argv in commands.items():
                samples[name].append(_cpu(argv))
    base = statistics.median(samples["python -c pass"])
    out: dict[str, dict[str, float]] = {}
    print(f"{'command':38} {'min CPU-s':>10} {'median':>10} {'x python -c pass':>17}")
    for name, values in samples.items():
        median = statistics.median(values)
        out[name] = {
            "cpu_s_min": round(min(values), 4),
            "cpu_s_median": round(median, 4),
            "over_python": round(median / base, 1) if base else 0.0,
        }
        print(f"{name:38} {min(values):10.3f} {median:10.3f} {out[name]['over_python']:17.1f}")
    print(
        json.dumps(
            {
                "repeat": args.repeat,
                "help_cpu_s": out["shadow --help"]["cpu_s_median"],
                "validate_cpu_s": out["shadow corpus validate (3 traces)"]["cpu_s_median"],
                "commands": out,
            }
        )
    )


if __name__ == "__main__":
    main()
