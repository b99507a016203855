# Senses: `make demo` runs the station on emulated hardware, `make test` runs every check.
# Both create .venv when it is missing and install what they need; running them again
# installs nothing new unless pyproject.toml changed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEVICE_STAMP := $(VENV)/.installed-device
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck pytest bench train-food pi-check system-deps clean

demo: $(DEVICE_STAMP)
	$(VENV)/bin/senses demo

test: $(DEV_STAMP) lint typecheck pytest

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(DEV_STAMP)
	$(VENV)/bin/mypy

pytest: $(DEV_STAMP) system-deps
	$(PY) -m pytest

# Debian packages the tests need: dbus-daemon runs the private bus BlueZoo (a mock BlueZ)
# lives on; EGL/GL (Mesa) let Kivy render the app's screens offscreen; PortAudio and
# libsndfile are the ear's microphone and file back ends; Mosquitto is the real broker the
# MQTT tests publish to; systemd and shellcheck check the unit file and the Pi installer. Installed
# when missing and we are root (CI, a fresh Pi); otherwise we say how.
SYSTEM_PACKAGES := dbus libegl1 libgl1 libgl1-mesa-dri libportaudio2 libsndfile1 mosquitto systemd shellcheck
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing Debian packages: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

bench: $(DEVICE_STAMP)
	$(VENV)/bin/senses bench nose

train-food: $(DEV_STAMP)
	$(VENV)/bin/senses-train food

# The device on emulated Raspberry Pi 3 / 4 / 5 CPUs (qemu-user) under Pi OS bookworm
# (Python 3.11) and trixie (3.13): see hardware/pi-emulation/README.md. About 8 minutes from
# an empty cache; needs root (debootstrap).
pi-check: $(DEVICE_STAMP)
	$(PY) hardware/pi-emulation/pi_check.py

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Senses needs Python 3.11 or newer"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel

$(DEVICE_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[device]'
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[device,app,train,dev]'
	touch $@ $(DEVICE_STAMP)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
