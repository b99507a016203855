"""The one exception hierarchy of the device package.

Every error a user can meet derives from :class:`SensesError` and also from the builtin it
resembles (as gpiozero does), so callers can catch either. Messages say what went wrong *and*
what to do about it.
"""

from __future__ import annotations


class SensesError(Exception):
    """Base class of every error raised on purpose by the station."""


class ConfigError(SensesError, ValueError):
    """The configuration file is missing, unreadable or invalid."""


class DriverSettingError(ConfigError):
    """A driver setting (address, channel, gain, data rate) is one the chip does not have.

    A :class:`ConfigError` (hence a ``ValueError``) because these settings come from the
    station's configuration file.
    """


class ModelError(SensesError):
    """A model folder cannot be used."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model folder or one of its files does not exist."""


class ModelCardError(ModelError, ValueError):
    """A model's card.json is missing fields or does not match its model file."""


class ModelChecksumError(ModelError, ValueError):
    """model.tflite does not have the sha256 its card states (corrupt or swapped file)."""


class InterpreterMissingError(ModelError, ImportError):
    """Neither LiteRT (ai-edge-litert) nor tflite-runtime is installed."""


class InferenceError(ModelError, RuntimeError):
    """The interpreter failed on an input."""


class InferenceTimeoutError(InferenceError, TimeoutError):
    """An invoke overran its deadline; the model reopened its interpreter for the next call."""


class HardwareError(SensesError, OSError):
    """A sensor or bus misbehaved."""


class I2CBusError(HardwareError):
    """An I2C transfer failed (EIO, lost arbitration, ...): usually a loose cable or noise."""


class I2CDeviceMissingError(HardwareError):
    """No chip answered at an I2C address (NACK, errno 121 EREMOTEIO)."""


class ConversionTimeoutError(HardwareError, TimeoutError):
    """An ADC or sensor did not finish a measurement before its deadline."""


class SensorDisconnectedError(HardwareError):
    """A channel reads a rail voltage: the sensor or its load resistor is not connected."""


class CalibrationError(SensesError, ValueError):
    """Calibration data is missing, stale or was taken in unusable conditions."""


class StoreError(SensesError, OSError):
    """The event store cannot be opened, read or written; the message says which file and why."""


class RecordingError(SensesError, ValueError):
    """A recording (CSV) cannot be read: the message names file, line and column."""


class ConceptError(SensesError, ValueError):
    """A concept (CAV) cannot be trained, loaded or used; the message says what to fix."""


class ConceptFileError(ConceptError):
    """A ``.cav`` file is corrupt, truncated, of a newer format or made for another backbone."""


class MoodBoardError(ConceptError):
    """A mood board cannot be trained on: unreadable, tiny or duplicate images, too few images."""


class ConceptQualityError(ConceptError):
    """The backbone cannot tell the board from random images: the concept is refused."""


class CameraUnavailableError(HardwareError):
    """The camera is missing, busy, or stopped delivering frames (unplugged mid-run)."""


class FrameSourceError(SensesError, ValueError):
    """A frame source cannot be used: a video or image folder that is missing or unreadable,
    or a source description (``video:PATH``, ``folder:DIR``) that does not parse."""


class BirdDataError(SensesError, ValueError):
    """Bird training audio or its label file cannot be used; the message names the file, and
    the line or point for a label file."""


class BirdDataMissingError(BirdDataError, FileNotFoundError):
    """A recording or label file that bird training needs is not in the data folder."""


class AudioInputError(SensesError, ValueError):
    """Audio handed to the ear is unusable (wrong shape, not numbers, NaN, bad sample rate)."""


class AudioFileError(AudioInputError):
    """An audio file cannot be read: missing, unsupported format, corrupt or empty."""


class MicrophoneUnavailableError(HardwareError):
    """The microphone is missing, busy, vanished mid-run, or PortAudio is not installed."""


class EarModelError(ModelCardError):
    """An audio model folder's card lacks what the ear needs (task_config, labels, backbone)."""


class MqttConfigError(ConfigError):
    """The ``[mqtt]`` section cannot be used: no host, an unreadable password file, a CA file
    that is missing or not PEM. The message names the setting or file and how to fix it."""


class SystemdEnvironmentError(SensesError, ValueError):
    """A variable systemd normally sets ($NOTIFY_SOCKET, $WATCHDOG_USEC, $WATCHDOG_PID) is
    malformed: usually set by hand outside systemd. The message names it and what to do."""


class StatusUnavailableError(SensesError):
    """No status to show: the daemon is not running, or never wrote one here."""


class BenchError(SensesError, RuntimeError):
    """A benchmark cannot measure what it promises: the daemon under test exited early or never
    reported READY. The message says what happened and shows the daemon's last log lines."""


class DiskFullError(StoreError):
    """The disk is full: a clip or snapshot cannot be written even after the oldest ones were
    deleted to make room. The message names the folder and says to free space."""


class UnknownSpeciesError(ConfigError):
    """A species name in an allow/deny list or threshold table that the model does not know;
    the message lists close matches."""


class SpeciesModelInstallError(SensesError):
    """A species model (BirdNET) cannot be installed: no network, the package index refused,
    a file failed its checksum, or the folder cannot be written. Nothing is left half-installed."""


class LicenceNotAcceptedError(SpeciesModelInstallError):
    """The model's licence was not accepted (``--accept-licence`` or a typed "yes")."""
