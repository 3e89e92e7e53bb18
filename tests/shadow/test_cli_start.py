"""The CLI loads only what the command it runs needs (issue 19: `shadow --help` cost 3.5 CPU-seconds because
every command module loaded scipy, deepdiff, DuckDB and pyarrow). What is checked here is *which modules
are imported*, not time: the CPU figures are in benchmarks/bench_cli_start.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from corpora.generator import GeneratorConfig, generate_corpus
from corpora.importers import IMPORTERS
from corpora.io import TraceWriter
from shadow import cli
from shadow.commands import corpus as corpus_command
from shadow.commands import corpus_import

HEAVY = (
    "duckdb",
    "pyarrow",
    "scipy",
    "deepdiff",
    "pandas",
    "networkx",
    "numpy",
    "engines.actor",
    "engines.legacy",
)


def _loaded_after(argv: list[str]) -> dict[str, object]:
    """Run ``shadow ARGV`` in a fresh interpreter; its exit code and which heavy modules it loaded."""
    code = (
        "import sys, json\n"
        "from shadow.cli import main\n"
        f"rc = main({argv!r})\n"
        f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        "print(json.dumps({'rc': rc, 'heavy': heavy}), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    return json.loads(done.stderr.strip().splitlines()[-1])


def test_help_loads_no_heavy_library() -> None:
    code = (
        "import sys\nfrom shadow.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "COMMAND" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_corpus_validate_loads_no_heavy_library(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    with TraceWriter(path) as writer:
        for trace in generate_corpus(1, 3, GeneratorConfig(max_steps=20)):
            writer.write(trace)
    result = _loaded_after(["corpus", "validate", "--quiet", str(path)])
    assert result == {"rc": 0, "heavy": []}


def test_a_cycle_is_still_named_without_networkx_on_the_common_path(tmp_path: Path) -> None:
    """The validator checks acyclicity with the stdlib and asks networkx only to name a cycle it found."""
    trace = next(iter(generate_corpus(1, 1, GeneratorConfig(max_steps=20))))
    line = json.loads(json.dumps(_encode(trace)))
    steps = line["definition"]["steps"]
    first, last = steps[0], steps[-1]
    last.setdefault("transitions", []).append({"to": first["id"]})
    path = tmp_path / "cycle.jsonl"
    path.write_text(json.dumps(line) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "shadow.cli", "corpus", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "cycle" in done.stderr
    assert first["id"] in done.stderr


def _encode(trace: object) -> object:
    from corpora.codec import encode

    return encode(trace)


def test_each_command_is_registered_by_its_module_with_the_help_line_the_cli_shows() -> None:
    parser = cli.build_parser(full=True)
    choices = parser._subparsers._group_actions[0]  # type: ignore[union-attr]
    shown = {action.dest: action.help for action in choices._choices_actions}  # type: ignore[attr-defined]
    assert shown == {name: help_line for name, (_, help_line) in cli.COMMANDS.items()}
    lazy = cli.build_parser("run")._subparsers._group_actions[0]  # type: ignore[union-attr]
    assert sorted(lazy.choices) == sorted(cli.COMMANDS)  # type: ignore[arg-type]


def test_constants_written_for_a_light_start_match_their_sources() -> None:
    assert tuple(sorted(IMPORTERS)) == corpus_import.SOURCES
    assert GeneratorConfig().max_steps == corpus_command.DEFAULT_MAX_STEPS


@pytest.mark.parametrize("argv", [["--version"], ["run", "--version"]])
def test_version(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    if argv[0] == "run":
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == cli.EXIT_HARNESS  # --version belongs to `shadow`, not to a command
        return
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("workflow-shadow ")


def _leaf_parsers() -> dict[str, object]:
    import argparse

    found: dict[str, object] = {}

    def walk(parser: argparse.ArgumentParser) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found[parser.prog.removeprefix("shadow ").strip()] = parser
        for action in subs:
            for child in action.choices.values():
                walk(child)

    walk(cli.build_parser(full=True))
    return found


def test_every_command_help_ends_with_an_example() -> None:
    leaves = _leaf_parsers()
    assert set(leaves) == set(cli.EXAMPLES)
    for name, parser in leaves.items():
        assert "Example: shadow " in (parser.epilog or ""), name  # type: ignore[attr-defined]


def test_readers_take_the_database_as_db_or_positionally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.duckdb"
    assert cli.main(["summary", "--db", str(missing)]) == cli.EXIT_HARNESS
    assert cli.main(["summary", str(missing)]) == cli.EXIT_HARNESS
    with pytest.raises(SystemExit) as exc:
        cli.main(["summary"])
    assert exc.value.code == cli.EXIT_HARNESS
    assert "pass --db DATABASE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["gate", "a.duckdb", "--db", "b.duckdb", "--cohorts", "c.toml"])
    assert "two databases given" in capsys.readouterr().err
