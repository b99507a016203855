"""Running the doctor's checks and reporting what they found.

Runs the checks side by side, each in its own daemon thread with its own deadline: a camera
driver or a D-Bus call that hangs costs that check a "did not finish" finding, not the whole run
(the longest deadline, 9 s, bounds it). An unexpected exception inside a check becomes a failed
finding of that check, with the traceback in the debug log (``senses -v doctor``).

Prints a table (or, with ``--json``, one object: ``checks`` and ``summary``) and returns the exit
code for scripts: 1 when any check fails, 0 otherwise (warnings alone do not fail).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from device.config import Config
from device.doctor.bluetooth import BLUEZ_TIMEOUT_S, check_bluez
from device.doctor.camera import check_camera
from device.doctor.findings import Check, Finding, Status
from device.doctor.microphone import check_microphone
from device.doctor.models import check_models
from device.doctor.nose import check_calibration, check_food_state, check_i2c
from device.doctor.station import check_config, check_disk

log = logging.getLogger(__name__)

TABLE_WIDTH_FOR_FILES = 200
STATUS_STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.FAIL: "bold red"}


def all_checks(config: Config) -> list[Check]:
    """Everything ``senses doctor`` looks at, each with its deadline (the longest bounds a run:
    loading every model takes 2-4 s on a desktop, more on a Pi)."""
    return [
        ("config", lambda: check_config(config), 1.0),
        ("i2c", lambda: check_i2c(config), 5.0),
        ("nose calibration", lambda: check_calibration(config), 2.0),
        ("food in the box", lambda: check_food_state(config), 1.0),
        ("camera", lambda: check_camera(config), 6.0),
        ("microphone", lambda: check_microphone(config), 5.0),
        ("bluetooth", lambda: check_bluez(config), BLUEZ_TIMEOUT_S + 1.0),
        ("models", lambda: check_models(config), 9.0),
        ("disk", lambda: check_disk(config), 5.0),
    ]


class _CheckRun:
    """One check running in its own thread; :meth:`findings` waits for it up to a deadline."""

    def __init__(self, check: Check) -> None:
        self.name, self._function, self.deadline_s = check
        self._result: list[Finding] | None = None
        # Daemon: a check stuck in a driver must not keep the process alive after the report.
        self._thread = threading.Thread(target=self._run, name=f"doctor-{self.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._function()
        except Exception as e:  # reported as this check's failure, never a crash of the run
            log.debug("check %s raised", self.name, exc_info=True)
            self._result = [
                Finding(
                    self.name,
                    Status.FAIL,
                    f"the check itself failed: {type(e).__name__}: {e}",
                    "please report this as a bug with the output of `senses -v doctor`",
                )
            ]

    def findings(self, deadline_monotonic_s: float) -> list[Finding]:
        self._thread.join(max(0.0, deadline_monotonic_s - time.monotonic()))
        if self._thread.is_alive() or self._result is None:
            return [
                Finding(
                    self.name,
                    Status.FAIL,
                    f"did not finish within {self.deadline_s:g} s (a driver or service hangs)",
                    "look at `journalctl -b` for driver errors; unplug and replug the device",
                )
            ]
        return self._result


def diagnose(checks: Sequence[Check]) -> list[Finding]:
    """Run ``checks`` side by side, each held to its own deadline; findings in check order."""
    started_s = time.monotonic()
    runs = [_CheckRun(check) for check in checks]
    for run in runs:
        run.start()
    findings: list[Finding] = []
    for run in runs:
        findings.extend(run.findings(started_s + run.deadline_s))
    return findings


def exit_code(findings: Sequence[Finding]) -> int:
    return 1 if any(f.status is Status.FAIL for f in findings) else 0


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    counts = {status.value: 0 for status in Status}
    for finding in findings:
        counts[finding.status.value] += 1
    return {**counts, "exit_code": exit_code(findings)}


def report_json(findings: Sequence[Finding], out: TextIO) -> None:
    document = {"checks": [f.to_dict() for f in findings], "summary": summary(findings)}
    out.write(json.dumps(document, ensure_ascii=False) + "\n")


def report_table(findings: Sequence[Finding], console: Console) -> None:
    table = Table(title="senses doctor")
    for column in ("check", "status", "found", "fix"):
        table.add_column(column, overflow="fold")
    for finding in findings:
        # Text, not markup: messages quote config sections like "[eye.source]".
        table.add_row(
            Text(finding.name),
            Text(finding.status.value, style=STATUS_STYLE[finding.status]),
            Text(finding.detail),
            Text(finding.fix),
        )
    console.print(table)
    counts = summary(findings)
    verdict = (
        "[bold red]something needs fixing[/]"
        if counts["exit_code"]
        else "[green]ready[/]"
        if not counts[Status.WARN.value]
        else "[yellow]works, with warnings[/]"
    )
    console.print(
        f"{verdict}: {counts['ok']} ok, {counts['warn']} warning(s), {counts['fail']} failure(s)"
    )


def run_doctor(
    config: Config,
    *,
    json_output: bool,
    checks: Sequence[Check] | None = None,
    out: TextIO | None = None,
) -> int:
    """Check everything; print the findings; 0 when nothing fails, 1 otherwise.

    ``checks`` replaces :func:`all_checks` (tests hand in checks bound to
    emulated hardware); ``out`` replaces stdout.
    """
    findings = diagnose(all_checks(config) if checks is None else checks)
    stream = out if out is not None else sys.stdout
    if json_output:
        report_json(findings, stream)
    else:
        # A file or pipe gets a wide table: lines are for grep, not an 80-column terminal.
        report_table(
            findings,
            Console(file=stream, width=TABLE_WIDTH_FOR_FILES) if out is not None else Console(),
        )
    return exit_code(findings)
