"""Runs the offscreen UI checks (``check_ui_*.py``) in a pytest process of their own.

A Kivy window loads Mesa's software OpenGL (llvmpipe) and with it LLVM; TensorFlow's model
conversion in the same process then dies with a segmentation fault, whichever of the two
comes first (tests/test_training_food.py). So the window lives in a child process, and a
plain ``pytest`` still runs everything. To run the checks directly, with pytest's usual
output: ``pytest tests/app_ui -o python_files='check_ui_*.py'`` (or name a check file).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 300


def test_offscreen_ui_checks_pass_and_save_the_screenshots() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(HERE),
            "-o",
            "python_files=check_ui_*.py",
            "-p",
            "no:cacheprovider",
            "-q",
            "--no-header",
        ],
        cwd=HERE.parents[1],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    summary = result.stdout.strip().splitlines()[-1:] or ["(no output)"]
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{result.stderr[-3000:]}"
    assert " passed" in summary[0] and "skipped" not in summary[0], summary[0]
