"""A pytest plugin, loaded by pytest.ini: where the suite's time goes, each test module's total
(setup, call and teardown), printed at the end of every run, slowest first."""

from collections import defaultdict

_MODULE_SECONDS: defaultdict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    _MODULE_SECONDS[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    if len(_MODULE_SECONDS) < 2:
        return
    terminalreporter.section("time by module")
    for module, seconds in sorted(_MODULE_SECONDS.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:8.0f} s  {module}")
