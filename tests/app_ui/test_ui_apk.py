"""The Android build's inputs: the staged app (``python -m mobile_app.apk``) and the spec.

The APK itself cannot be built here (no Android SDK); what can break silently is checked:
a file the app imports missing from the stage, bleak's Java classes, and a spec whose
requirements, permissions or paths drifted from the code.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mobile_app.apk import APP_DIR, STAGE, pinned_bleak_version, stage

SPEC = APP_DIR / "buildozer.spec"


@pytest.fixture(scope="module")
def spec() -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(SPEC, encoding="utf-8")
    return parser["app"]


def listed(value: str) -> list[str]:
    return [item.strip() for item in value.replace("\n", ",").split(",") if item.strip()]


def test_stage_holds_the_app_and_the_protocol_but_not_the_station(tmp_path: Path) -> None:
    dest = stage(tmp_path / "android")
    app = dest / "app"
    assert (app / "main.py").read_text().strip().endswith("raise SystemExit(main([]))")
    for name in ("main.py", "state.py", "connection.py", "android.py", "ui/app.py"):
        assert (app / "mobile_app" / name).is_file(), name
    assert (app / "device" / "link" / "protocol.py").is_file()
    assert not (app / "mobile_app" / "demo.py").exists()
    assert not (app / "device" / "runtime.py").exists()
    java = dest / "java" / "com" / "github" / "hbldh" / "bleak"
    assert {p.name for p in java.iterdir()} >= {
        "PythonScanCallback.java",
        "PythonBluetoothGattCallback.java",
    }


def test_staged_app_imports_on_its_own(tmp_path: Path) -> None:
    app = stage(tmp_path / "android") / "app"
    env = {**os.environ, "PYTHONPATH": str(app)}
    code = (
        "import mobile_app.main, mobile_app.connection, mobile_app.android, device.link.protocol;"
        "print(mobile_app.main.__file__); print(device.link.protocol.__file__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert all(line.startswith(str(app)) for line in result.stdout.split())


def test_spec_points_at_the_stage_and_the_pinned_recipe(spec: configparser.SectionProxy) -> None:
    assert (APP_DIR / spec["source.dir"]).resolve() == STAGE / "app"
    assert (APP_DIR / spec["android.add_src"]).resolve() == STAGE / "java"
    recipes = APP_DIR / spec["p4a.local_recipes"]
    assert (recipes / "bleak" / "__init__.py").is_file()
    assert pinned_bleak_version() == importlib.metadata.version("bleak")
    assert spec["p4a.branch"].startswith("v")  # a release tag, not a moving branch


def test_spec_requirements_and_permissions(spec: configparser.SectionProxy) -> None:
    requirements = listed(spec["requirements"])
    assert f"kivy=={importlib.metadata.version('kivy')}" in requirements
    for name in ("python3", "bleak", "pyjnius", "android", "plyer==2.1.0"):
        assert name in requirements
    assert any(r.startswith("typing_extensions==") for r in requirements)
    assert any(r.startswith("cbor2==") for r in requirements)
    permissions = " ".join(listed(spec["android.permissions"]))
    for permission in ("BLUETOOTH_SCAN", "BLUETOOTH_CONNECT", "ACCESS_FINE_LOCATION"):
        assert f"android.permission.{permission}" in permissions
    assert "POST_NOTIFICATIONS" in permissions
    assert int(spec["android.api"]) >= 31  # the Android 12 permission model
