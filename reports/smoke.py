"""Open a rendered report in headless Chromium and fail on console errors or network requests.

``python -m reports.smoke results.duckdb [--html report.html] [--screenshot report.png]`` renders the
report (or takes an already rendered ``.html``), loads it from ``file://`` in headless Chromium, and
speaks the DevTools protocol over ``--remote-debugging-pipe`` (file descriptors 3 and 4, NUL-separated
JSON): no websocket client, no driver download, nothing beyond the Debian ``chromium`` package.

It fails (exit 1) when the page logs a console error or warning, throws an uncaught exception,
violates its Content-Security-Policy (Chromium logs each violation), or requests anything that is not
the report itself or a ``data:`` URL. It also exercises the page's script — sorts a table, filters
the groups and opens a raw record from the JSON data island — so a script blocked by a wrong CSP
hash is caught too. Exit 4 when Chromium is missing or does not answer (a harness problem).

Why the pipe and not ``--enable-logging``: the log format is not stable across versions and does not
report requests; the protocol reports both as structured events.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from results.exitcodes import EXIT_FINDINGS, EXIT_HARNESS, EXIT_OK

__all__ = ["SmokeError", "SmokeResult", "find_chromium", "main", "smoke_test"]


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Run in the page after load: use the page's own controls the way a reader would.
_EXERCISE = """(() => {
  const out = {};
  const th = document.querySelector('table.sortable th');
  if (th) { th.click(); out.sorted = th.getAttribute('aria-sort'); }
  const f = document.getElementById('group-filter');
  if (f) { f.value = 'zzz-no-such-signature'; f.dispatchEvent(new Event('input'));
           out.filtered = document.getElementById('group-count').textContent;
           f.value = ''; f.dispatchEvent(new Event('input')); }
  const b = document.querySelector('button[data-raw]');
  if (b) { b.click(); const pre = document.getElementById('raw-' + b.getAttribute('data-raw'));
           out.raw = pre ? pre.textContent.length : -1; }
  out.height = document.documentElement.scrollHeight;
  return JSON.stringify(out);
})()"""


class SmokeError(Exception):
    """Chromium could not be started or did not answer in time (a harness problem, not a finding)."""


@dataclass(frozen=True, slots=True)
class SmokeResult:
    """What the browser saw. ``ok`` when there are no problems."""

    problems: tuple[str, ...]
    requests: tuple[str, ...]
    exercised: dict[str, Any] = field(default_factory=dict)
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def find_chromium() -> str | None:
    """The Chromium binary: ``$SHADOW_CHROMIUM`` or the first of the usual names on PATH."""
    explicit = os.environ.get("SHADOW_CHROMIUM")
    if explicit:
        return explicit if shutil.which(explicit) else None
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


class _Pipe:
    """DevTools protocol over Chromium's pipe: we write to its fd 3, read from its fd 4."""

    def __init__(self, binary: str, profile: str) -> None:
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()

        # Python's own descriptors are non-inheritable (PEP 446), so close_fds=False leaks nothing but
        # the two that wire() places at 3 and 4 in the child just before exec.
        def wire() -> None:
            a, b = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10), fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.close(a)
            os.close(b)

        args = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--mute-audio",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire,
            close_fds=False,
        )
        os.close(cmd_r)
        os.close(res_w)
        self._buf = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        reply = self._wait(lambda m: m.get("id") == self._next, timeout, f"reply to {method}")
        if "error" in reply:
            raise SmokeError(f"Chromium refused {method}: {reply['error']}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def wait_event(self, method: str, timeout: float) -> dict[str, Any]:
        for e in self.events:
            if e.get("method") == method:
                return e
        return self._wait(lambda m: m.get("method") == method, timeout, method)

    def _wait(self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                message: dict[str, Any] = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if match(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0 or self._proc.poll() is not None:
                raise SmokeError(
                    f"Chromium did not send {what} within {timeout:.0f} s (exit code {self._proc.poll()})"
                )
            ready, _, _ = select.select([self._res_r], [], [], left)
            if ready:
                chunk = os.read(self._res_r, 1 << 20)
                if not chunk:
                    raise SmokeError(f"Chromium closed the DevTools pipe while waiting for {what}")
                self._buf += chunk

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._cmd_w)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        os.close(self._res_r)


def _problems(events: Sequence[dict[str, Any]], page_url: str) -> tuple[list[str], list[str]]:
    problems, requests = [], []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            problems.append(
                f"uncaught exception: {d.get('exception', {}).get('description') or d.get('text')}"
            )
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            problems.append(f"console.{p.get('type')}: {text}")
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") in ("error", "warning"):
            entry = p["entry"]
            problems.append(f"{entry.get('source')} {entry.get('level')}: {entry.get('text')}")
        elif method == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            if url != page_url and not url.startswith("data:"):
                requests.append(url)
                problems.append(f"network request: {url}")
    return problems, requests


def smoke_test(
    html: Path,
    *,
    screenshot: Path | None = None,
    width: int = 1400,
    height: int = 3000,
    timeout: float = 60.0,
) -> SmokeResult:
    """Load ``html`` in headless Chromium, exercise it, screenshot it and report what went wrong."""
    binary = find_chromium()
    if binary is None:
        raise SmokeError(
            "Chromium not found: install the Debian package 'chromium' "
            "(apt-get install -y chromium) or set SHADOW_CHROMIUM to the binary"
        )
    url = html.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="shadow-smoke-") as profile:
        pipe = _Pipe(binary, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                pipe.send(f"{domain}.enable", session=session)
            pipe.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                session=session,
            )
            pipe.events.clear()
            pipe.send("Page.navigate", {"url": url}, session=session)
            pipe.wait_event("Page.loadEventFired", timeout)
            value = pipe.send(
                "Runtime.evaluate", {"expression": _EXERCISE, "returnByValue": True}, session=session
            )["result"].get("value", "{}")
            exercised: dict[str, Any] = json.loads(value) if isinstance(value, str) else {}
            if screenshot is not None:
                shot = pipe.send(
                    "Page.captureScreenshot", {"format": "png"}, session=session, timeout=timeout
                )
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            problems, requests = _problems(pipe.events, url)
        finally:
            pipe.close()
    if exercised.get("raw", 0) == 0 and 'data-raw="' in html.read_text(encoding="utf-8"):
        problems.append("the page script did not run: the raw-record button filled nothing (CSP hash wrong?)")
    if exercised.get("filtered") not in (None, "0 shown"):
        problems.append(f"the group filter did not filter: {exercised.get('filtered')!r}")
    return SmokeResult(tuple(problems), tuple(requests), exercised, screenshot)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "source", type=Path, help="a results database (rendered first) or a rendered .html report"
    )
    parser.add_argument(
        "--html", type=Path, help="where to write the rendered report (default: a temporary file)"
    )
    parser.add_argument("--screenshot", type=Path, default=Path("report-smoke.png"), help="PNG to write")
    parser.add_argument("--baseline", type=Path, help="previous results database (rendered with --baseline)")
    args = parser.parse_args(argv)
    try:
        if args.source.suffix.lower() in (".html", ".htm"):
            html = args.source
        else:
            from reports.data import ReportDataError
            from reports.render import write_report

            html = args.html or Path(tempfile.mkdtemp(prefix="shadow-report-")) / "report.html"
            try:
                stats = write_report(args.source, html, baseline=args.baseline)
            except ReportDataError as exc:
                print(f"smoke: {exc}", file=sys.stderr)
                return EXIT_HARNESS
            print(f"rendered {html} ({stats.bytes / 1024:,.0f} KiB) in {stats.seconds:.2f} s")
        result = smoke_test(html, screenshot=args.screenshot)
    except SmokeError as exc:
        print(f"smoke: {exc}", file=sys.stderr)
        return EXIT_HARNESS
    print(f"screenshot: {result.screenshot}; page checks: {json.dumps(result.exercised)}")
    for problem in result.problems:
        print(f"FAIL {problem}", file=sys.stderr)
    print(
        "smoke: ok, no console errors, no network requests"
        if result.ok
        else f"smoke: {len(result.problems)} problem(s)"
    )
    return EXIT_OK if result.ok else EXIT_FINDINGS


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
