"""Fixtures of the reliability tests.

The BlueZoo fixtures (a private D-Bus with a user-space BlueZ) come from tests/link, so the
BlueZ restart here runs against the same stand-in as the link's own tests. The station
helpers are in station_harness.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "link"))

from bluezoo_harness import bluezoo, dbus_daemon

__all__ = ["bluezoo", "dbus_daemon"]  # fixtures, re-exported for the reliability tests
