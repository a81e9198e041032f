"""Pass counts per restart variant, for ``make soak`` (which repeats each variant)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

RESTART_TEST = "test_sigkill_before_the_first_commit_then_restart_loses_nothing"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    ok: dict[str, bool] = {}  # node id -> passed (a failed setup, call or teardown fails it)
    for outcome in ("passed", "failed", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if re.search(rf"{RESTART_TEST}\[.+-\d+\]$", nodeid):
                ok[nodeid] = ok.get(nodeid, True) and outcome == "passed"
    if not ok:
        return
    ran: Counter[str] = Counter()
    passed: Counter[str] = Counter()
    for nodeid, good in ok.items():
        variant = nodeid.rsplit("[", 1)[1].rsplit("-", 1)[0]
        ran[variant] += 1
        passed[variant] += good
    terminalreporter.write_sep("-", "restart variants")
    for variant in sorted(ran):
        terminalreporter.write_line(f"{variant}: {passed[variant]}/{ran[variant]} passed")
