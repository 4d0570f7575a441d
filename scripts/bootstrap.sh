#!/usr/bin/env bash
# Install what a fresh Debian machine lacks for Switchyard: system packages with apt (as root)
# and the Python packages into .venv. Safe to run again: it only installs what is missing.
set -euo pipefail

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
SYSTEM_PACKAGES=(mosquitto)
# Test-only servers: a throwaway PostgreSQL and a time-series server for telemetry tests;
# Debian's Chromium for the browser tests (Playwright drives /usr/bin/chromium: its own browser
# download cannot work here) and a Devanagari font so the Hindi page renders.
if [[ "${SWITCHYARD_BOOTSTRAP_TEST:-0}" == "1" ]]; then
  SYSTEM_PACKAGES+=(postgresql victoria-metrics chromium fonts-lohit-deva)
fi

missing=()
for package in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if (( ${#missing[@]} )); then
  echo "bootstrap: installing system packages: ${missing[*]}"
  if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
  elif command -v sudo >/dev/null; then
    SUDO=(sudo)
  else
    echo "bootstrap: need root (or sudo) to apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq || "${SUDO[@]}" apt-get update
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The Debian packages start system-wide services; Switchyard runs its own instances.
  for service in mosquitto postgresql victoria-metrics; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
      "${SUDO[@]}" systemctl stop "$service" || true
    fi
  done
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "bootstrap: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
# Exact versions from constraints.txt (`make lock` refreshes it), so a fresh machine installs
# what the suite last passed with, not whatever was released since.
"$VENV/bin/python" -m pip install -q -c constraints.txt -e ".[dev]"
echo "bootstrap: ready"
