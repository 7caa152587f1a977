"""Runs pytest inside the jail and writes the result record the host counts a verdict from.

Mounted read-only at /gryphgen; started as `python -B /gryphgen/run_verdict.py RECORD PYTEST-ARGS...`.
The record (JSON, in the jail's /tmp, outside the import path) lists every test pytest selected and
each one's outcome, and is written only when the session finishes: code under test that exits at
import, prints a passing summary or kills its interpreter leaves no complete record, and the host
counts no pass. Running as a script keeps this directory, not the work dir, first on sys.path while
pytest and the record's own modules are imported; the work dir joins it afterwards, as
`python -m pytest` would have put it, so the doctests can import the solution.
"""

import json
import os
import sys

import pytest


class Recorder:
    def __init__(self, path):
        self.path = path
        self.selected = []
        self.outcomes = {}

    def pytest_collection_finish(self, session):
        self.selected = [item.nodeid for item in session.items]

    def pytest_runtest_logreport(self, report):
        failed = report.failed or (report.when == "call" and report.skipped)
        if failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.when == "call" and report.passed:
            self.outcomes.setdefault(report.nodeid, "passed")

    def pytest_collectreport(self, report):
        if report.failed:
            self.outcomes[report.nodeid or "collection"] = "failed"

    def pytest_sessionfinish(self, session, exitstatus):
        record = {"selected": self.selected, "outcomes": self.outcomes, "finished": True}
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh)


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    sys.exit(pytest.main(sys.argv[2:], plugins=[Recorder(sys.argv[1])]))
