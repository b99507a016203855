"""Reading the secrets and certificates the ``[mqtt]`` section points at.

Done when the sink is built, not when the config is parsed: files are checked where they are
used, so a ``SIGHUP`` reload picks up a rotated password, and every problem is reported with
the file and what to do.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from device.errors import MqttConfigError
from device.mqtt.settings import MqttConfig


def read_password(config: MqttConfig) -> str | None:
    """The broker password from ``password`` or ``password_file`` (trailing newline removed)."""
    if config.password is not None:
        return config.password.get_secret_value()
    path = config.password_file
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise MqttConfigError(
            f"mqtt.password_file {path} does not exist; create it holding only the password "
            "(chmod 600), or fix the path"
        ) from e
    except PermissionError as e:
        raise MqttConfigError(
            f"mqtt.password_file {path} is not readable by this user; "
            "give the user running the station read access (e.g. chown it to that user)"
        ) from e
    except (OSError, UnicodeDecodeError) as e:
        raise MqttConfigError(f"cannot read mqtt.password_file {path}: {e}") from e
    password = text.rstrip("\r\n")
    if not password:
        raise MqttConfigError(f"mqtt.password_file {path} is empty; write the password into it")
    return password


def tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    """A context that verifies the broker's certificate and host name, or None without TLS."""
    if not config.tls:
        return None
    ca_file: Path | None = config.ca_file
    if ca_file is None:
        return ssl.create_default_context()
    if not ca_file.is_file():
        raise MqttConfigError(
            f"mqtt.ca_file {ca_file} does not exist; point it at the PEM file of the CA that "
            "signed the broker's certificate, or remove ca_file to trust the system's CAs"
        )
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except PermissionError as e:
        raise MqttConfigError(
            f"mqtt.ca_file {ca_file} is not readable by this user; give it read access"
        ) from e
    except (ssl.SSLError, OSError) as e:
        raise MqttConfigError(
            f"mqtt.ca_file {ca_file} is not a PEM certificate file ({e}); it must hold "
            "'-----BEGIN CERTIFICATE-----' blocks, e.g. the broker's ca.crt"
        ) from e
