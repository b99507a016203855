"""`pip install .` (not editable) has no models/ beside it: SENSES_MODELS_DIR finds them.

The package is installed for real into a folder of its own (``pip install --target``, no
dependencies: they come from this venv) and run from a folder outside the checkout, so nothing
of the checkout is importable or visible to it but what the setting names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from device.config import PROJECT_ROOT
from device.paths import MODELS_DIR_ENV

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("installed") / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(PROJECT_ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert not (site / "models").exists()
    return site


def _doctor(site: Path, cwd: Path, **env: str) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items() if k != MODELS_DIR_ENV}
    environ.update(PYTHONPATH=str(site), SENSES_DATA_DIR=str(cwd / "data"), **env)
    result = subprocess.run(
        [sys.executable, "-m", "device.cli", "doctor", "--json"],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _model_checks(report: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        c["check"]: c for c in report["checks"] if c["check"].startswith(("model ", "concept "))
    }


def test_installed_package_runs_the_installed_code_not_the_checkout(
    installed_site: Path, tmp_path: Path
) -> None:
    where = subprocess.run(
        [sys.executable, "-c", "import device; print(device.__file__)"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(installed_site)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(installed_site)), where


def test_doctor_finds_the_models_through_the_setting(installed_site: Path, tmp_path: Path) -> None:
    report = _doctor(installed_site, tmp_path, **{MODELS_DIR_ENV: str(PROJECT_ROOT / "models")})
    checks = _model_checks(report)
    assert {"model food_quality", "model mobilenet_v1_embedding", "model yamnet"} <= set(checks)
    assert "concept cats" in checks
    for name, check in checks.items():
        assert check["status"] == "ok", (name, check)
        assert str(PROJECT_ROOT / "models") in check["detail"]


def test_without_the_setting_doctor_names_it_as_the_fix(
    installed_site: Path, tmp_path: Path
) -> None:
    if Path("/opt/senses/models").is_dir():
        pytest.skip("this machine has an installed station's models in /opt/senses/models")
    checks = _model_checks(_doctor(installed_site, tmp_path))
    food = checks["model food_quality"]
    assert food["status"] == "fail"
    assert MODELS_DIR_ENV in food["fix"]
    assert "models_dir" in food["fix"]
