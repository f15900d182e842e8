"""A pytest plugin, loaded by pytest.ini: where the suite's time goes, and what failed as soon
as it fails.

- each test's outcome and time (a second or more), one line as it ends, in `.sandbox/test-times.log` (a run cut
  short, by CI's time limit say, still says where its time went);
- a failure's report printed at once, not only in the summary at the end;
- each test module's total (setup, call and teardown), printed at the end, slowest first."""

import os
import time
from collections import defaultdict
from pathlib import Path

_MODULE_SECONDS: defaultdict[str, float] = defaultdict(float)
_LOG = Path(__file__).resolve().parents[1] / ".sandbox" / "test-times.log"


def pytest_runtest_logreport(report):
    _MODULE_SECONDS[report.nodeid.split("::")[0]] += report.duration
    if os.environ.get("PYTEST_NESTED"):
        return
    if (report.when == "call" and report.duration >= 1) or report.failed:
        _LOG.parent.mkdir(exist_ok=True)
        with open(_LOG, "a") as log:
            log.write(f"{time.strftime('%H:%M:%S')} {report.duration:7.1f} s {report.outcome:8} {report.nodeid}\n")
    if report.failed:
        reporter = _reporter()
        if reporter is not None:
            lines = str(report.longrepr).splitlines()
            reporter.write_line("")
            reporter.write_sep("!", f"{report.nodeid} failed ({report.when}, {report.duration:.0f} s)")
            for line in lines[-60:]:
                reporter.write_line(line)


_CONFIG = None


def pytest_configure(config):
    global _CONFIG
    _CONFIG = config


def _reporter():
    return _CONFIG.pluginmanager.get_plugin("terminalreporter") if _CONFIG else None


def pytest_terminal_summary(terminalreporter):
    if len(_MODULE_SECONDS) < 2:
        return
    terminalreporter.section("time by module")
    for module, seconds in sorted(_MODULE_SECONDS.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:8.0f} s  {module}")
