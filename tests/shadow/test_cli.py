"""The top-level ``shadow`` entry point: whatever a command raises, the exit code keeps its meaning."""

from __future__ import annotations

import argparse

import pytest

from shadow import cli
from shadow.commands import summary


def _raising(exc: BaseException) -> object:
    def command(args: argparse.Namespace) -> int:
        del args
        raise exc

    return command


class TestUnexpectedErrors:
    def test_bug_is_a_harness_error_not_a_fail(self, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """An unexpected exception exits 4 with a one-line 'internal error', no traceback."""
        monkeypatch.delenv("SHADOW_DEBUG", raising=False)
        monkeypatch.setattr(summary, "summary_command", _raising(ZeroDivisionError("boom")))
        assert cli.main(["summary", "x.duckdb"]) == cli.EXIT_HARNESS
        err = capsys.readouterr().err
        assert "internal error: ZeroDivisionError: boom" in err
        assert "Traceback" not in err

    def test_debug_shows_the_traceback(self, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """SHADOW_DEBUG=1 adds the traceback and still exits 4."""
        monkeypatch.setenv("SHADOW_DEBUG", "1")
        monkeypatch.setattr(summary, "summary_command", _raising(KeyError("k")))
        assert cli.main(["summary", "x.duckdb"]) == cli.EXIT_HARNESS
        assert "Traceback" in capsys.readouterr().err

    def test_os_error_is_a_harness_error(self, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """An OSError nobody caught (disk full, permission) exits 4 naming the problem."""
        monkeypatch.setattr(
            summary, "summary_command", _raising(PermissionError(13, "Permission denied", "/x"))
        )
        assert cli.main(["summary", "x.duckdb"]) == cli.EXIT_HARNESS
        assert "harness error: [Errno 13] Permission denied: '/x'" in capsys.readouterr().err

    def test_interrupt_exits_130(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Ctrl-C inside a command exits 130."""
        monkeypatch.setattr(summary, "summary_command", _raising(KeyboardInterrupt()))
        assert cli.main(["summary", "x.duckdb"]) == cli.EXIT_INTERRUPTED


class TestNumberFlags:
    @pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "x"])
    def test_replay_time_limit_rejects_non_positive(self, value: str) -> None:
        """replay --time-limit must be a finite number > 0: a usage error with exit 4."""
        with pytest.raises(SystemExit) as info:
            cli.main(["replay", "c.jsonl", "--time-limit", value])
        assert info.value.code == cli.EXIT_HARNESS

    @pytest.mark.parametrize("flag", ["--noise-relative", "--noise-absolute"])
    def test_run_noise_threshold_rejects_nan(self, flag: str, capsys: pytest.CaptureFixture[str]) -> None:
        """run --noise-relative nan (which would hide every divergence) is a usage error with exit 4."""
        with pytest.raises(SystemExit) as info:
            cli.main(["run", "c.jsonl", "--db", "r.duckdb", flag, "nan"])
        assert info.value.code == cli.EXIT_HARNESS
        assert "must be a finite number >= 0" in capsys.readouterr().err

    def test_zero_noise_threshold_is_allowed(self) -> None:
        """A threshold of 0 (no tolerance) parses."""
        assert cli.finite_number(positive=False)("0") == 0.0


class TestMissingAction:
    @pytest.mark.parametrize("argv", [[], ["corpus"], ["rollout"]])
    def test_missing_action_prints_help_and_exits_4(self, argv: list[str],
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
        """'shadow', 'shadow corpus' or 'shadow rollout' alone show that help and exit 4 (usage error)."""
        assert cli.main(argv) == cli.EXIT_HARNESS
        assert "usage: shadow" in capsys.readouterr().out
