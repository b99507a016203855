"""What only Android needs: Bluetooth runtime permissions and system notifications.

On Android 12+ (API 31) scanning and connecting need the runtime permissions BLUETOOTH_SCAN
and BLUETOOTH_CONNECT ("Nearby devices"); older versions need location instead. bleak's
python-for-android backend only asks for location itself (before every scan, on every
version), so without this module a scan on a modern phone fails with ``SecurityException:
Need android.permission.BLUETOOTH_SCAN`` (research/ble_kivy.md §4.4). Android 13+ (API 33)
also asks before showing notifications.

Everywhere else these functions do nothing: on the desktop an alert is the in-app banner
(:attr:`mobile_app.state.AppState.banner`), which the app shows on every platform.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, Final

from mobile_app.state import Alert

log = logging.getLogger(__name__)

ANDROID_12_API: Final = 31
ANDROID_13_API: Final = 33

PERMISSION_TIMEOUT_S: Final = 120.0
"""How long the user may take over the permission dialog before we go on without."""


class PermissionDeniedError(PermissionError):
    """The user refused the Bluetooth permissions: the app cannot reach the station."""


def on_android() -> bool:
    # python-for-android sets ANDROID_ARGUMENT for the app process (kivy.utils does the same).
    return "ANDROID_ARGUMENT" in os.environ


NEARBY_DEVICES: Final = (
    "android.permission.BLUETOOTH_SCAN",
    "android.permission.BLUETOOTH_CONNECT",
)
"""Android 12+: what the user grants as "Nearby devices"."""
LOCATION: Final = (
    "android.permission.ACCESS_FINE_LOCATION",
    "android.permission.ACCESS_COARSE_LOCATION",
)
NOTIFICATIONS: Final = "android.permission.POST_NOTIFICATIONS"


def ble_permissions(api_level: int) -> list[str]:
    """The runtime permissions to request on this Android version (manifest names).

    Location on every version: before Android 12 a BLE scan needs it (scans can reveal where
    you are), and bleak's p4android scanner asks for it before every scan on every version,
    failing the scan if none is granted. Asking here first means one dialog at start-up
    instead of a surprise at the first scan.
    """
    needed = [*NEARBY_DEVICES] if api_level >= ANDROID_12_API else []
    needed += LOCATION
    if api_level >= ANDROID_13_API:
        needed.append(NOTIFICATIONS)
    return needed


def picture_permissions(api_level: int) -> list[str]:
    """What reading a picture the user picked needs: plyer's chooser turns the picked item
    into a file path, which Android 13+ guards with READ_MEDIA_IMAGES, older ones with
    READ_EXTERNAL_STORAGE."""
    if api_level >= ANDROID_13_API:
        return ["android.permission.READ_MEDIA_IMAGES"]
    return ["android.permission.READ_EXTERNAL_STORAGE"]


def request_picture_permissions(then: Callable[[], None]) -> None:
    """Ask for :func:`picture_permissions` if needed, then call ``then`` (on Android's UI
    thread when a dialog was shown; the chooser opens either way, and a refused permission
    shows as an unreadable picture, named on the board screen)."""
    from android.permissions import check_permission, request_permissions

    missing = [p for p in picture_permissions(_api_level()) if not check_permission(p)]
    if not missing:
        then()
        return
    request_permissions(missing, lambda _permissions, _grants: then())


def refused_essentials(granted: Mapping[str, bool], api_level: int) -> list[str]:
    """Which refusals stop the app from reaching the station (notifications are optional;
    approximate location is enough for bleak)."""
    refused = []
    if api_level >= ANDROID_12_API:
        refused += [p for p in NEARBY_DEVICES if not granted.get(p)]
    if not any(granted.get(p) for p in LOCATION):
        refused.append("ACCESS_COARSE_LOCATION")
    return [p.rsplit(".", 1)[-1] for p in refused]


def _api_level() -> int:
    from jnius import autoclass

    return int(autoclass("android.os.Build$VERSION").SDK_INT)


async def request_ble_permissions(timeout_s: float = PERMISSION_TIMEOUT_S) -> None:
    """Ask for the Bluetooth (and notification) permissions this Android version needs.

    Returns at once off Android or when all are granted already. Raises
    :class:`PermissionDeniedError` if the user refuses a Bluetooth permission (notifications
    are optional: refusing them only loses the system notifications).
    """
    if not on_android():
        return
    from android.permissions import check_permission, request_permissions

    api_level = _api_level()
    needed = ble_permissions(api_level)
    granted = {p: bool(check_permission(p)) for p in needed}
    missing = [p for p, ok in granted.items() if not ok]
    if not missing:
        return
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[dict[str, bool]] = loop.create_future()

    def on_result(permissions: list[str], grants: list[bool]) -> None:
        # Called on Android's UI thread, not on our event loop.
        result = dict(zip(permissions, grants, strict=False))

        def settle() -> None:
            if not answered.done():
                answered.set_result(result)

        loop.call_soon_threadsafe(settle)

    request_permissions(missing, on_result)
    try:
        granted.update(await asyncio.wait_for(answered, timeout_s))
    except TimeoutError:
        granted.update({p: bool(check_permission(p)) for p in missing})
    refused = refused_essentials(granted, api_level)
    if refused:
        which = "'Nearby devices' and 'Location'" if api_level >= ANDROID_12_API else "'Location'"
        raise PermissionDeniedError(
            f"Bluetooth permission refused ({', '.join(refused)}): allow {which} for Senses "
            "in Android's Settings > Apps > Senses > Permissions"
        )


class Notifier:
    """Posts each alert as a system notification on Android, through plyer.

    :meth:`notify` returns False where it posted nothing (the desktop, or plyer failing): the
    in-app banner is then the only signal, which the app shows anyway.
    """

    def __init__(self, *, system: bool | None = None, app_name: str = "Senses") -> None:
        self.system = on_android() if system is None else system
        self.app_name = app_name
        self._post: Callable[..., Any] | None = None

    def __call__(self, alert: Alert) -> None:
        """As an alert listener (``AppState.add_alert_listener(notifier)``)."""
        self.notify(alert)

    def notify(self, alert: Alert) -> bool:
        if not self.system:
            return False
        try:
            if self._post is None:
                from plyer import notification

                self._post = notification.notify
            self._post(
                title=alert.title,
                message=alert.message,
                app_name=self.app_name,
                timeout=10,
            )
        except Exception as e:
            # plyer raises NotImplementedError without a backend, and whatever the platform
            # raises when notifications are off: an alert must never break the app.
            log.warning("notification not shown (%s: %s); the in-app banner remains", type(e), e)
            return False
        return True
