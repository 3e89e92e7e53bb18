"""benchmarks/run_all.py: runs every bench_*.py and collects the JSON each prints last."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

RUN_ALL = Path(__file__).resolve().parents[2] / "benchmarks" / "run_all.py"


def load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_all", RUN_ALL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestRunAll:
    def test_collects_json_failures_and_plain_output(self, tmp_path: Path) -> None:
        """A JSON-printing benchmark is collected, a failing one marked failed, a chatty one kept as text."""
        (tmp_path / "bench_good.py").write_text('print("warming up")\nprint(\'{"steps_per_s": 123}\')\n')
        (tmp_path / "bench_bad.py").write_text("raise SystemExit(2)\n")
        (tmp_path / "bench_text.py").write_text('print("no json here")\n')
        (tmp_path / "helper.py").write_text("raise SystemExit(9)\n")
        out = tmp_path / "bench.json"
        code = load_runner().main(["--dir", str(tmp_path), "--out", str(out), "--timeout", "60"])
        assert code == 1
        doc = json.loads(out.read_text())
        by_name = {b["name"]: b for b in doc["benchmarks"]}
        assert set(by_name) == {"bench_good", "bench_bad", "bench_text"}
        assert by_name["bench_good"]["result"] == {"steps_per_s": 123}
        assert (by_name["bench_bad"]["status"], by_name["bench_bad"]["returncode"]) == ("failed", 2)
        assert by_name["bench_text"]["json"] is False
        assert by_name["bench_text"]["tail"] == ["no json here"]

    def test_pattern_selects_and_timeout_stops(self, tmp_path: Path) -> None:
        """-k keeps matching benchmarks only; one that overruns --timeout is recorded as a timeout."""
        (tmp_path / "bench_slow.py").write_text("import time\ntime.sleep(30)\n")
        (tmp_path / "bench_other.py").write_text("print('{}')\n")
        out = tmp_path / "bench.json"
        code = load_runner().main(
            ["--dir", str(tmp_path), "--out", str(out), "-k", "*slow", "--timeout", "0.5"]
        )
        assert code == 1
        (only,) = json.loads(out.read_text())["benchmarks"]
        assert (only["name"], only["status"]) == ("bench_slow", "timeout")
