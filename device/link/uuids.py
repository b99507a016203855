"""Every UUID the station's GATT server uses, as lower-case 128-bit strings.

Our own service and characteristics share one random (version 4) base,
``2545xxxx-d900-4194-bf10-11ab75e350b2``, generated for Senses with ``uuid.uuid4()``; only the
16 bits after ``2545`` vary, in the style of Nordic's services (Thingy:52 ``EF68xxxx-...``).
The Bluetooth SIG base ``0000xxxx-0000-1000-8000-00805f9b34fb`` is reserved for SIG-assigned
numbers (Core 5.4 Vol 3 Part B §2.5.1) and is only used for those below: ESS 0x181A and its
characteristics (GATT Specification Supplement, GSS), DIS 0x180A, and the descriptors.
Numbers are from the SIG's Assigned Numbers document.

Pure standard library: the app imports it too.
"""

from __future__ import annotations

from typing import Final

_SENSES_BASE: Final = "2545{:04x}-d900-4194-bf10-11ab75e350b2"
_SIG_BASE: Final = "0000{:04x}-0000-1000-8000-00805f9b34fb"


def senses_uuid(short: int) -> str:
    """A UUID on the Senses base (``short`` is the 16 varying bits)."""
    return _SENSES_BASE.format(short)


def sig_uuid(assigned: int) -> str:
    """The 128-bit form of a SIG-assigned 16-bit number (e.g. 0x181A for ESS)."""
    return _SIG_BASE.format(assigned)


# --- Senses service -------------------------------------------------------------------------
SENSES_SERVICE: Final = senses_uuid(0x0001)
STATION_INFO: Final = senses_uuid(0x0002)
"""Read: a ``station_info`` message (protocol version, station name, newest seq)."""
CONTROL_POINT: Final = senses_uuid(0x0003)
"""Write with response (encrypted link) + notify: control requests and their results."""

# One notify characteristic per stream, so a client subscribes only to what it shows.
FOOD_STREAM: Final = senses_uuid(0x0010)
CONCEPT_STREAM: Final = senses_uuid(0x0011)
BIRD_STREAM: Final = senses_uuid(0x0012)
NOSE_STREAM: Final = senses_uuid(0x0013)
HEALTH_STREAM: Final = senses_uuid(0x0014)

STREAMS: Final[dict[str, str]] = {
    "food": FOOD_STREAM,
    "concept": CONCEPT_STREAM,
    "bird": BIRD_STREAM,
    "nose": NOSE_STREAM,
    "health": HEALTH_STREAM,
}
"""Event type -> its notify characteristic."""

# --- Environmental Sensing Service (ESS v1.0; characteristics from GSS) ----------------------
ESS_SERVICE: Final = sig_uuid(0x181A)
TEMPERATURE: Final = sig_uuid(0x2A6E)
HUMIDITY: Final = sig_uuid(0x2A6F)
AMMONIA_CONCENTRATION: Final = sig_uuid(0x2BCF)
CARBON_MONOXIDE_CONCENTRATION: Final = sig_uuid(0x2BD0)
METHANE_CONCENTRATION: Final = sig_uuid(0x2BD1)
VOC_CONCENTRATION: Final = sig_uuid(0x2BE7)

# --- Device Information Service (DIS v1.1) ---------------------------------------------------
DEVICE_INFORMATION_SERVICE: Final = sig_uuid(0x180A)
MANUFACTURER_NAME: Final = sig_uuid(0x2A29)
MODEL_NUMBER: Final = sig_uuid(0x2A24)
FIRMWARE_REVISION: Final = sig_uuid(0x2A26)
SOFTWARE_REVISION: Final = sig_uuid(0x2A28)

# --- Descriptors -----------------------------------------------------------------------------
CHARACTERISTIC_USER_DESCRIPTION: Final = sig_uuid(0x2901)
CLIENT_CHARACTERISTIC_CONFIGURATION: Final = sig_uuid(0x2902)
ES_MEASUREMENT: Final = sig_uuid(0x290C)
ES_TRIGGER_SETTING: Final = sig_uuid(0x290D)
