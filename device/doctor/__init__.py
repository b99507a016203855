"""``senses doctor``: what is wrong with this station, and how to fix it.

Each module checks one part of the station and returns :class:`Finding` objects (what it found,
ok / warn / fail, how to fix it); :mod:`device.doctor.run` runs them side by side, each with a
deadline, and prints a table or JSON. The checks take the hardware object to look at (an I2C
bus, a camera factory, a sounddevice-like module, a D-Bus address) so that tests and the
emulated station hand in ``hardware/sim``'s devices.
"""

from device.doctor.findings import Check, Finding, Status
from device.doctor.run import all_checks, diagnose, exit_code, run_doctor

__all__ = ["Check", "Finding", "Status", "all_checks", "diagnose", "exit_code", "run_doctor"]
