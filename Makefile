# Senses: `make demo` runs the station on emulated hardware, `make test` runs every check.
# Both create .venv when it is missing and install what they need; running them again
# installs nothing new unless pyproject.toml changed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEVICE_STAMP := $(VENV)/.installed-device
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck pytest bench train-food pi-check system-deps test-private-clone clean

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

# Programs and libraries outside Python the tests need (a private dbus-daemon for BlueZoo,
# EGL/GL and Mesa for Kivy offscreen, PortAudio and libsndfile for the ear, Mosquitto, systemd-
# analyze, shellcheck, setpriv): tests/system_deps.py looks for each itself (no dpkg needed),
# installs them with apt-get when we are root on Debian, and otherwise says which are missing and
# how to install them.
system-deps: | $(PY)
	$(PY) tests/system_deps.py

# The installer tests from a fresh clone in a private (0700) folder, as a newcomer's clone
# often is (mktemp -d, a 0700 home): nothing may depend on the clone's parent folders.
test-private-clone: $(DEV_STAMP)
	@private=$$(mktemp -d) && trap 'rm -rf "$$private"' EXIT && \
	git clone --quiet . "$$private/senses" && \
	cd "$$private/senses" && PYTHONPATH="$$PWD" $(CURDIR)/$(PY) -m pytest -q -p no:cacheprovider tests/test_install.py

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
