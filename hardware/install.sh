#!/usr/bin/env bash
# Install the Senses station on a Raspberry Pi running 64-bit Raspberry Pi OS (bookworm or
# trixie) as a systemd service that starts at boot.
#
#   sudo hardware/install.sh                       install, or update after `git pull`
#   hardware/install.sh --dry-run                  print every step, change nothing (no root)
#   sudo hardware/install.sh --uninstall           remove it; keep config, data and user
#   sudo hardware/install.sh --uninstall --purge   also remove config, data and the user
#
# Running it again is harmless: every step first looks whether it is already done. What goes
# where, and why, is in hardware/README.md.
set -euo pipefail

readonly PREFIX=/opt/senses
readonly VENV=$PREFIX/venv
readonly MODELS_DIR=$PREFIX/models
readonly DOC_DIR=$PREFIX/doc
readonly CONFIG_DIR=/etc/senses
readonly CONFIG_FILE=$CONFIG_DIR/senses.toml
readonly DATA_DIR=/var/lib/senses
readonly SERVICE_USER=senses
# i2c: the nose; video: cameras and picamera2's buffers; audio: the microphone; bluetooth:
# BlueZ's D-Bus policy; gpio: buttons or LEDs a builder adds.
readonly SERVICE_GROUPS=(i2c video audio bluetooth gpio)
readonly UNIT_NAME=senses.service
readonly UNIT_FILE=/etc/systemd/system/$UNIT_NAME
readonly UDEV_RULES_FILE=/etc/udev/rules.d/99-senses.rules
readonly MODULES_LOAD_FILE=/etc/modules-load.d/senses-i2c.conf
readonly COMMAND_LINK=/usr/local/bin/senses
readonly BOOT_CONFIGS=(/boot/firmware/config.txt /boot/config.txt)
readonly SUPPORTED_CODENAMES=(bookworm trixie)
readonly MIN_PYTHON=3.11
# python3-picamera2 comes from Raspberry Pi's own archive (archive.raspberrypi.com).
readonly APT_PACKAGES=(python3-venv libportaudio2 libsndfile1 bluez dbus i2c-tools
    python3-picamera2)
# Left out of the staged copy pip builds from: caches, local venvs, git history.
readonly STAGE_EXCLUDES=(.git .venv .cache .mypy_cache .ruff_cache .pytest_cache .hypothesis
    build dist senses.egg-info)

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR
readonly CHECKOUT=${SCRIPT_DIR%/*}

DRY_RUN=0
FORCE=0
UNINSTALL=0
PURGE=0
START=1
REBOOT_NEEDED=0

usage() {
    cat <<EOF
Usage: sudo $0 [--dry-run] [--force] [--no-start]
       sudo $0 --uninstall [--purge] [--dry-run]
       $0 --print-config

Installs the Senses station from this checkout ($CHECKOUT):
  Debian packages: ${APT_PACKAGES[*]}
  $VENV (Python venv with the system's packages visible, for picamera2)
  user $SERVICE_USER in groups ${SERVICE_GROUPS[*]}
  $CONFIG_FILE (an example, only if absent), data in $DATA_DIR
  I2C enabled, $UDEV_RULES_FILE, $UNIT_FILE (enabled and started)

  --dry-run       print what would be done; change nothing (root not needed)
  --force         install even on a machine that is not 64-bit ARM Debian
  --no-start      enable the service for the next boot but do not start it now
  --uninstall     remove the service, venv, models, udev rule; keep config and data
  --purge         with --uninstall: also remove $CONFIG_DIR, $DATA_DIR and the user
  --print-config  print the example configuration and exit
EOF
}

step() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# One argument as the shell would need it typed: quoted only when it has to be.
shell_word() {
    if [[ $1 =~ ^[A-Za-z0-9_./=:,@%+-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

# Runs a command, or in a dry run prints it (quoted, so it can be pasted).
run() {
    if ((DRY_RUN)); then
        local arg line='    would run:'
        for arg in "$@"; do
            line+=" $(shell_word "$arg")"
        done
        printf '%s\n' "$line"
    else
        "$@"
    fi
}

contains() {
    local wanted=$1 item
    shift
    for item in "$@"; do
        [[ $item == "$wanted" ]] && return 0
    done
    return 1
}

os_release_field() {
    # Read in a subshell: /etc/os-release assigns variables we do not want here.
    # shellcheck source=/dev/null
    (. /etc/os-release 2>/dev/null && printf '%s' "${!1:-}")
}

# The concept the eye starts with: the one that ships in models/concepts (installed under
# MODELS_DIR), so a fresh station shows the eye working before its owner trains their own.
shipped_concept_line() {
    local concept
    for concept in "$CHECKOUT"/models/concepts/*.cav; do
        if [[ -f $concept ]]; then
            printf 'concepts = ["%s/concepts/%s"]\n' "$MODELS_DIR" "${concept##*/}"
            return
        fi
    done
    printf '# concepts = ["/var/lib/senses/my_concept.cav"]\n'
}

print_example_config() {
    cat <<'EOF'
# Senses station configuration, read by `senses run` (the senses.service unit).
# hardware/install.sh wrote this only because the file did not exist; updates keep your edits.
# Every key has a default and unknown keys are refused. After an edit:
#   sudo systemctl reload senses
# Wiring, I2C addresses and load resistors: /opt/senses/doc/WIRING.md

[station]
name = "senses"               # the Bluetooth LE name phones see (at most 20 characters)
data_dir = "/var/lib/senses"  # store, calibration, AI crops: the only folder the service may write

[hardware]
# "real" fails loudly when /dev/i2c-1 is missing; "auto" would quietly replay a recording
# through emulated chips, which suits a laptop, not a station.
mode = "real"
i2c_bus = 1

[inference]
models_dir = "/opt/senses/models"
num_threads = 1

[link]
enabled = true
# adapter = "hci0"            # default: BlueZ's first adapter

[eye]
# Concepts made with `senses eye train`; copy yours to /var/lib/senses and list them here.
EOF
    shipped_concept_line
    cat <<'EOF'

[eye.source]
kind = "picamera2"            # the Pi camera on the CSI ribbon; "camera" for a USB webcam
# device = 0                  # with kind = "camera": /dev/video0

# The nose. Without [[nose.adcs]] / [[nose.sensors]] the wiring is the default one: nine MQ
# sensors (MQ135, MQ136, MQ2, MQ3, MQ4, MQ5, MQ6, MQ8, MQ9) on three ADS1115 at 0x48, 0x49
# and 0x4A, four channels each in that order, and an SHT31 at 0x44. To describe other wiring,
# list every ADC and every sensor:
#
# [[nose.adcs]]
# address = 0x48
#
# [[nose.sensors]]
# name = "MQ135"
# type = "MQ135"
# adc_address = 0x48
# channel = 0
# load_kohm = 10              # RL on your module: measure it, many carry 1 kΩ
# adc_divider_ratio = 0.6667  # the 5 V AO pin through a divider into the 3.3 V ADS1115
#
# [nose.climate]
# address = 0x44              # 0x45 when the SHT31's ADDR pin is tied high

[ear]
# The ear names the species of its own head, other birds "Bird". For the ~6,500 species of
# BirdNET v2.4 (CC BY-NC-SA 4.0: non-commercial use only; never shipped with Senses), install
# it yourself, then restart the service:
#   sudo -u senses /opt/senses/venv/bin/senses ear install birdnet --config /etc/senses/senses.toml
# species_model = "birdnet"   # the default: BirdNET once installed, else the head
# latitude = 51.75            # the range filter: species unlikely here and this week of the
# longitude = -1.25           #   year are not reported (`senses ear species` lists them)
EOF
}

# ---------------------------------------------------------------------------------------------
# Checks

check_platform() {
    local problems=() arch os_id os_like codename
    arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
    if [[ $arch != arm64 ]]; then
        problems+=("this machine is $arch, not arm64: Senses runs on 64-bit Raspberry Pi OS" \
            "(Pi 3, 4, 5, Zero 2 W; LiteRT, the model runtime, has no 32-bit ARM wheels)")
    fi
    os_id=$(os_release_field ID)
    os_like=$(os_release_field ID_LIKE)
    codename=$(os_release_field VERSION_CODENAME)
    if [[ $os_id != debian && $os_id != raspbian && " $os_like " != *" debian "* ]]; then
        problems+=("this is ${os_id:-an unknown OS}, not Debian / Raspberry Pi OS:" \
            "the steps use apt, dpkg and Debian's package names")
    elif ! contains "$codename" "${SUPPORTED_CODENAMES[@]}"; then
        warn "Debian ${codename:-(no codename)} is untested; supported:" \
            "${SUPPORTED_CODENAMES[*]}"
    fi
    if ((${#problems[@]})); then
        if ((FORCE)); then
            warn "${problems[*]}; going on because of --force"
        else
            die "${problems[*]}. Pass --force to install anyway."
        fi
    fi
    if ! python3 -c "import sys; sys.exit(sys.version_info < (${MIN_PYTHON/./, }))" 2>/dev/null
    then
        die "python3 is missing or older than $MIN_PYTHON; Raspberry Pi OS bookworm has 3.11"
    fi
    if ((!DRY_RUN && EUID != 0)); then
        die "installing needs root: sudo $0 $*  (or --dry-run to see the steps)"
    fi
}

check_checkout() {
    [[ -f $CHECKOUT/pyproject.toml && -d $CHECKOUT/device && -d $CHECKOUT/models ]] ||
        die "$CHECKOUT is not a Senses checkout (no pyproject.toml, device/ or models/);" \
            "run the install.sh inside a cloned repository"
    local model
    for model in "$CHECKOUT"/models/*/model.tflite; do
        [[ -e $model ]] || continue
        # tr: a real model's header holds NUL bytes, which bash cannot keep in a string.
        if [[ $(head -c 24 "$model" | tr -d '\0') == "version https://git-lfs"* ]]; then
            die "$model is a Git LFS pointer, not a model: run 'git lfs pull' in $CHECKOUT"
        fi
    done
}

# ---------------------------------------------------------------------------------------------
# Install steps

install_packages() {
    step "Debian packages"
    local missing=() package
    for package in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$package")
    done
    if ((${#missing[@]} == 0)); then
        note "all installed: ${APT_PACKAGES[*]}"
        return
    fi
    run apt-get update -qq
    if contains python3-picamera2 "${missing[@]}" &&
        ! apt-cache show python3-picamera2 >/dev/null 2>&1; then
        warn "python3-picamera2 is not in this machine's apt sources (it comes from" \
            "archive.raspberrypi.com): the Pi camera needs it; a USB webcam (eye.source.kind =" \
            "\"camera\") works without"
        local kept=()
        for package in "${missing[@]}"; do
            [[ $package == python3-picamera2 ]] || kept+=("$package")
        done
        missing=("${kept[@]}")
    fi
    if ((${#missing[@]})); then
        # No recommends: python3-picamera2 would otherwise pull in Qt and OpenGL for its
        # preview windows, which a headless station never opens.
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}"
    fi
}

install_user() {
    step "user $SERVICE_USER"
    local group missing_groups=()
    for group in "${SERVICE_GROUPS[@]}"; do
        if ! getent group "$group" >/dev/null; then
            note "group $group does not exist yet (the udev rules give it its devices)"
            run groupadd --system "$group"
        fi
    done
    if getent passwd "$SERVICE_USER" >/dev/null; then
        note "$SERVICE_USER exists"
        local current
        current=" $(id -nG "$SERVICE_USER") "
        for group in "${SERVICE_GROUPS[@]}"; do
            [[ $current == *" $group "* ]] || missing_groups+=("$group")
        done
    else
        run useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "Senses station" "$SERVICE_USER"
        missing_groups=("${SERVICE_GROUPS[@]}")
    fi
    if ((${#missing_groups[@]})); then
        local joined
        joined=$(IFS=,; printf '%s' "${missing_groups[*]}")
        run usermod --append --groups "$joined" "$SERVICE_USER"
    else
        note "already in groups ${SERVICE_GROUPS[*]}"
    fi
}

install_directories() {
    step "folders"
    run install -d -m 0755 "$PREFIX" "$DOC_DIR" "$CONFIG_DIR"
    run install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$DATA_DIR"
}

venv_is_current() {
    # Reuse the venv only if it was made by today's python3 (an OS upgrade changes it) and
    # sees the system's packages (picamera2 is importable only from there).
    [[ -x $VENV/bin/python ]] || return 1
    grep -q '^include-system-site-packages = true' "$VENV/pyvenv.cfg" 2>/dev/null || return 1
    local venv_version system_version
    venv_version=$("$VENV/bin/python" -c 'import sys; print(sys.version_info[:2])') || return 1
    system_version=$(python3 -c 'import sys; print(sys.version_info[:2])')
    [[ $venv_version == "$system_version" ]]
}

install_venv() {
    step "Python environment $VENV"
    if venv_is_current; then
        note "reusing it"
    else
        if [[ -e $VENV ]]; then
            note "made by another Python or without system packages: recreating it"
            run rm -rf "$VENV"
        fi
        run python3 -m venv --system-site-packages "$VENV"
    fi
    # pip builds in the source tree; building from a copy keeps root-owned build files out
    # of the user's checkout.
    local stage excludes=() name
    for name in "${STAGE_EXCLUDES[@]}"; do
        excludes+=("--exclude=./$name")
    done
    if ((DRY_RUN)); then
        stage=/tmp/senses-stage.XXXXXX
        note "would copy $CHECKOUT (without ${STAGE_EXCLUDES[*]}) to $stage"
    else
        stage=$(mktemp -d /tmp/senses-stage.XXXXXX)
        # shellcheck disable=SC2064  # expand $stage now: it is local to this function
        trap "rm -rf '$stage'" EXIT
        tar -C "$CHECKOUT" "${excludes[@]}" -cf - . | tar -C "$stage" -xf -
    fi
    # picamera2's compiled helpers from apt (simplejpeg, python3-av) are built against the
    # system's numpy; a venv numpy of a newer major version (bookworm has 1.24, pip would pick
    # 2.x) makes them fail to import. So numpy stays on the system's major version.
    local numpy_major constraints=()
    numpy_major=$(python3 -c 'import numpy; print(numpy.__version__.split(".")[0])' \
        2>/dev/null || true)
    if [[ $numpy_major =~ ^[0-9]+$ ]]; then
        note "keeping numpy below $((numpy_major + 1)) (the system's is ${numpy_major}.x)"
        constraints=(--constraint "$stage/system-numpy.txt")
        if ((!DRY_RUN)); then
            printf 'numpy<%s\n' "$((numpy_major + 1))" >"$stage/system-numpy.txt"
        fi
    fi
    run "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet \
        "${constraints[@]}" "${stage}[device]" ||
        die "pip could not install Senses (see above). No network? Or a Python whose" \
            "packages have no aarch64 wheels: use the image's own python3 (3.11 or 3.13)"
    run ln -sfn "$VENV/bin/senses" "$COMMAND_LINK"
}

install_models_and_docs() {
    step "models $MODELS_DIR"
    # Replaced as a whole, so a model removed from the checkout does not linger.
    run rm -rf "$MODELS_DIR.new"
    run cp -R "$CHECKOUT/models" "$MODELS_DIR.new"
    run rm -rf "$MODELS_DIR"
    run mv "$MODELS_DIR.new" "$MODELS_DIR"
    run install -m 0644 "$SCRIPT_DIR/README.md" "$SCRIPT_DIR/WIRING.md" "$DOC_DIR/"
}

install_config() {
    step "configuration $CONFIG_FILE"
    if [[ -e $CONFIG_FILE ]]; then
        note "keeping yours"
        if ((!DRY_RUN)) && ! "$VENV/bin/python" -c \
            'import sys, pathlib, device.config as c; c.load_config(pathlib.Path(sys.argv[1]))' \
            "$CONFIG_FILE"; then
            warn "$CONFIG_FILE is not valid for this version (see above): the service will" \
                "not start until it is fixed"
        fi
        return
    fi
    if ((DRY_RUN)); then
        note "would write the example (see --print-config), mode 0640, group $SERVICE_USER"
        return
    fi
    local example
    example=$(mktemp)
    print_example_config >"$example"
    # Group-readable only: a config may hold an MQTT password.
    install -m 0640 -o root -g "$SERVICE_USER" "$example" "$CONFIG_FILE"
    rm -f "$example"
}

# Turns on `dtparam=i2c_arm=on` in a Raspberry Pi config.txt and sets REBOOT_NEEDED when it
# changed the file. A line already on is left alone; an explicit `off` is switched; otherwise
# the line is appended under `[all]`, because the file may end inside a section such as
# `[cm4]` that applies to other boards only.
enable_i2c_in_config_txt() {
    local config_txt=$1
    # The same test raspi-config's get_i2c makes.
    if grep -Eq '^(device_tree_param|dtparam)=([^,]*,)*i2c(_arm)?(=(on|true|yes|1))?(,.*)?$' \
        "$config_txt"; then
        note "I2C already on in $config_txt"
        return
    fi
    REBOOT_NEEDED=1
    if grep -Eq '^[[:space:]]*dtparam=i2c_arm=off' "$config_txt"; then
        run sed -i -E 's/^([[:space:]]*dtparam=i2c_arm=)off/\1on/' "$config_txt"
    elif ((DRY_RUN)); then
        note "would append '[all]' and 'dtparam=i2c_arm=on' to $config_txt"
    else
        printf '\n%s\n%s\n%s\n' \
            "# The Senses nose: I2C on GPIO2 (SDA) and GPIO3 (SCL). Added by install.sh." \
            "[all]" "dtparam=i2c_arm=on" >>"$config_txt"
    fi
}

enable_i2c() {
    step "I2C"
    if command -v raspi-config >/dev/null; then
        # get_i2c prints 0 when I2C is on (raspi-config's own convention).
        if [[ $(raspi-config nonint get_i2c) == 0 ]]; then
            note "already on"
        else
            # Loads i2c-dev and sets the dtparam now, so no reboot is needed.
            run raspi-config nonint do_i2c 0
        fi
        return
    fi
    local config_txt
    for config_txt in "${BOOT_CONFIGS[@]}"; do
        if [[ -f $config_txt ]]; then
            enable_i2c_in_config_txt "$config_txt"
            if [[ ! -f $MODULES_LOAD_FILE ]]; then
                if ((DRY_RUN)); then
                    note "would write $MODULES_LOAD_FILE: i2c-dev (loads /dev/i2c-* at boot)"
                else
                    printf 'i2c-dev\n' >"$MODULES_LOAD_FILE"
                fi
            fi
            run modprobe i2c-dev || warn "could not load i2c-dev now; it loads at the next boot"
            return
        fi
    done
    warn "no raspi-config and no ${BOOT_CONFIGS[*]}: enable I2C for this board yourself" \
        "(the nose needs /dev/i2c-1)"
}

install_udev_rules() {
    step "udev rules $UDEV_RULES_FILE"
    run install -m 0644 "$SCRIPT_DIR/udev/99-senses.rules" "$UDEV_RULES_FILE"
    if [[ -S /run/udev/control ]]; then
        run udevadm control --reload-rules
        # Existing device nodes get the new groups now, not only after a reboot.
        run udevadm trigger --action=change --subsystem-match=i2c-dev \
            --subsystem-match=video4linux --subsystem-match=media --subsystem-match=dma_heap \
            --subsystem-match=sound
    else
        note "udev is not running here (a chroot?): the rules apply from the next boot"
    fi
}

install_service() {
    step "systemd service $UNIT_NAME"
    run install -m 0644 "$SCRIPT_DIR/systemd/$UNIT_NAME" "$UNIT_FILE"
    if [[ ! -d /run/systemd/system ]]; then
        note "systemd is not running here (a chroot?): enabling for the next boot"
        run systemctl enable "$UNIT_NAME"
        return
    fi
    run systemctl daemon-reload
    run systemctl enable "$UNIT_NAME"
    if ((REBOOT_NEEDED)); then
        note "I2C was just enabled in config.txt: reboot, and the station starts by itself"
    elif ((START)); then
        # restart, not start: after an update the running daemon must load the new code.
        run systemctl restart "$UNIT_NAME" ||
            warn "the service did not start: journalctl -u senses -b says why"
    fi
}

install_all() {
    check_checkout
    install_packages
    install_user
    install_directories
    install_venv
    install_models_and_docs
    install_config
    enable_i2c
    install_udev_rules
    install_service
    step "done$( ((DRY_RUN)) && printf ' (dry run: nothing was changed)')"
    cat <<EOF
    config:  $CONFIG_FILE   (then: sudo systemctl reload senses)
    status:  systemctl status senses;  logs: journalctl -u senses -f
    data:    $DATA_DIR
    checks:  sudo -u $SERVICE_USER senses doctor --config $CONFIG_FILE
EOF
    if ((REBOOT_NEEDED)); then
        printf '    reboot now (sudo reboot): I2C is enabled at boot\n'
    fi
}

# ---------------------------------------------------------------------------------------------
# Uninstall

uninstall() {
    step "removing the Senses service"
    if [[ -d /run/systemd/system ]] && systemctl cat "$UNIT_NAME" >/dev/null 2>&1; then
        run systemctl disable --now "$UNIT_NAME"
    fi
    run rm -f "$UNIT_FILE"
    if [[ -d /run/systemd/system ]]; then
        run systemctl daemon-reload
    fi
    run rm -f "$UDEV_RULES_FILE" "$MODULES_LOAD_FILE"
    if [[ -S /run/udev/control ]]; then
        run udevadm control --reload-rules
    fi
    if [[ -L $COMMAND_LINK && $(readlink "$COMMAND_LINK") == "$VENV"/* ]]; then
        run rm -f "$COMMAND_LINK"
    fi
    run rm -rf "$PREFIX"
    if ((PURGE)); then
        run rm -rf "$CONFIG_DIR" "$DATA_DIR"
        if getent passwd "$SERVICE_USER" >/dev/null; then
            run userdel "$SERVICE_USER"
        fi
    else
        note "kept $CONFIG_DIR (your config) and $DATA_DIR (readings, calibration);" \
            "--purge removes them and the user $SERVICE_USER"
    fi
    note "left alone: Debian packages and I2C, which other programs may use"
    step "done$( ((DRY_RUN)) && printf ' (dry run: nothing was changed)')"
}

main() {
    local arg
    for arg in "$@"; do
        case $arg in
            --dry-run) DRY_RUN=1 ;;
            --force) FORCE=1 ;;
            --no-start) START=0 ;;
            --uninstall) UNINSTALL=1 ;;
            --purge) PURGE=1 ;;
            --print-config)
                print_example_config
                return
                ;;
            -h | --help)
                usage
                return
                ;;
            *)
                usage >&2
                die "unknown option $arg"
                ;;
        esac
    done
    if ((PURGE && !UNINSTALL)); then
        die "--purge goes with --uninstall"
    fi
    check_platform "$@"
    if ((UNINSTALL)); then
        uninstall
    else
        install_all
    fi
}

# Sourcing the file (the tests do) defines the functions without running anything.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
