"""Exit codes: one contract across every ``shadow`` command and the CI gate.

0 success / PASS, 1 findings / FAIL, 2 MARGINAL, 3 INSUFFICIENT_DATA, 4 harness error (bad input, wrong
flag, unreadable file or database, and any unexpected exception: a bug must not read as FAIL),
130 interrupted (SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "EXIT_FAIL",
    "EXIT_FINDINGS",
    "EXIT_HARNESS",
    "EXIT_INSUFFICIENT_DATA",
    "EXIT_INTERRUPTED",
    "EXIT_MARGINAL",
    "EXIT_OK",
    "EXIT_TERMINATED",
]

EXIT_OK: Final = 0
EXIT_FAIL: Final = 1
EXIT_FINDINGS: Final = 1  # the same code: a command that finds problems (quarantined traces, divergences)
EXIT_MARGINAL: Final = 2
EXIT_INSUFFICIENT_DATA: Final = 3
EXIT_HARNESS: Final = 4
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT
EXIT_TERMINATED: Final = 143  # 128 + SIGTERM
