"""tests/system_deps.py: what `make test` says when a program or library is missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import system_deps


def test_this_machine_has_everything_the_tests_need() -> None:
    # make test installed or found them before pytest started; a miss here is a broken check.
    assert [r.name for r in system_deps.missing_requirements()] == []


def test_a_missing_program_is_named_with_its_purpose_and_install_commands(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = system_deps.Requirement(
        "no-such-broker",
        "the MQTT tests",
        system_deps._program("no-such-broker-xyz"),
        "no-such-broker-deb",
        "no-such-broker-rpm",
        "no-such-broker-brew",
    )
    monkeypatch.setattr(system_deps, "REQUIREMENTS", (absent,))
    assert system_deps.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "no-such-broker: the MQTT tests" in err
    assert any(package in err for package in ("no-such-broker-deb", "no-such-broker-rpm")), err


def test_libraries_are_found_by_the_dynamic_loader_without_dpkg(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No dpkg on the PATH (a Fedora or macOS machine): the check still finds what is there.
    monkeypatch.setenv("PATH", "/nonexistent")
    assert system_deps._library("c")()
    assert not system_deps._library("no-such-library-xyz")()
