"""Optional MQTT output with Home Assistant discovery."""
