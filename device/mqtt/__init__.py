"""Optional MQTT output with Home Assistant discovery (``[mqtt]`` in the config).

``settings`` is the config section; ``discovery`` the topics and entity configs; ``states``
turns events into JSON states; ``outbox`` holds messages while the broker is away;
``credentials`` reads the password and CA files; ``sink`` is the :class:`MqttSink` the runtime
adds to its sinks. Importing this package does not import paho-mqtt: only ``sink`` does.
"""
