"""The BLE link: station -> app over GATT (Bluetooth Core 5.4 Vol 3 Part G).

* :mod:`device.link.protocol`: the wire format (messages, framing, control requests); standard
  library + cbor2 only, shared with the app.
* :mod:`device.link.ess`: Environmental Sensing Service values per the GATT Specification
  Supplement; :mod:`device.link.uuids`: every UUID.
* :mod:`device.link.core`: :class:`~device.link.core.LinkCore`, what every transport builds on.
* :mod:`device.link.bluez`: the production GATT server on BlueZ over D-Bus (dbus-fast).
* :mod:`device.link.bumble_link`: a Bumble server and client on an in-process virtual link.
* :mod:`device.link.service`: the demo's virtual phone link as a station sense.
* :mod:`device.link.pairing`: who may bond and when (the pairing window), bonded phones' records;
  :mod:`device.link.bluez_agent`: the station's own BlueZ pairing agent and ``Pairable``;
  :mod:`device.link.control_socket` and :mod:`device.link.cli`: ``senses link pair | phones |
  forget`` through the running daemon.

Nothing is imported here, so the app can import ``device.link.protocol`` without the daemon.
"""
