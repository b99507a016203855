"""Android-only behaviour, checked on the desktop: which permissions, and the notification
fallback."""

from __future__ import annotations

from typing import Any

import pytest

from mobile_app.android import (
    Notifier,
    ble_permissions,
    refused_essentials,
    request_ble_permissions,
)
from mobile_app.state import Alert

ALERT = Alert(0.0, "food", "Food is spoiled", "Do not eat it.", "danger")


def test_android_12_and_later_ask_for_nearby_devices_and_location() -> None:
    # Location too: bleak's p4android scanner refuses to scan without it on every version.
    assert ble_permissions(31) == [
        "android.permission.BLUETOOTH_SCAN",
        "android.permission.BLUETOOTH_CONNECT",
        "android.permission.ACCESS_FINE_LOCATION",
        "android.permission.ACCESS_COARSE_LOCATION",
    ]
    assert ble_permissions(33)[-1] == "android.permission.POST_NOTIFICATIONS"


def test_older_android_asks_for_location_to_scan() -> None:
    assert ble_permissions(30) == [
        "android.permission.ACCESS_FINE_LOCATION",
        "android.permission.ACCESS_COARSE_LOCATION",
    ]


def test_only_bluetooth_refusals_stop_the_app() -> None:
    granted = dict.fromkeys(ble_permissions(33), True)
    granted["android.permission.POST_NOTIFICATIONS"] = False
    granted["android.permission.ACCESS_FINE_LOCATION"] = False  # "approximate" is enough
    assert refused_essentials(granted, 33) == []
    granted["android.permission.BLUETOOTH_SCAN"] = False
    assert refused_essentials(granted, 33) == ["BLUETOOTH_SCAN"]
    assert refused_essentials({}, 30) == ["ACCESS_COARSE_LOCATION"]


@pytest.mark.asyncio
async def test_permissions_are_not_asked_for_on_the_desktop() -> None:
    await request_ble_permissions()  # returns at once; would import android.* otherwise


def test_desktop_alerts_stay_in_the_app() -> None:
    assert Notifier(system=False).notify(ALERT) is False


def test_a_failing_notification_falls_back_to_the_banner() -> None:
    notifier = Notifier(system=True)

    def broken(**_fields: Any) -> None:
        raise NotImplementedError("no notification backend")

    notifier._post = broken
    assert notifier.notify(ALERT) is False
