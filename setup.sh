#!/usr/bin/env bash
# Set up synthenv on a fresh Debian/Ubuntu machine: system packages (scsynth, sclang, JACK,
# libsndfile), then .venv/ in this folder with synthenv and all its extras (train, dev, rllib).
# Re-running is cheap: installed system packages are skipped, pip only adds what is missing.
#   PYTHON=/path/to/python3.11 ./setup.sh   to choose the interpreter (>= 3.11)
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(supercollider-server supercollider-language jackd2 libsndfile1 python3-venv)
PYTHON="${PYTHON:-python3}"

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  echo "setup.sh: installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # jackd2 asks about real-time priority; answer for a headless machine
  echo "jackd2 jackd/tweak_rt_limits boolean false" | $SUDO debconf-set-selections
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup.sh: $PYTHON is missing or older than 3.11; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch is pinned (train extra) so that no other requirement pulls a different build; rllib: Ray RLlib engine
.venv/bin/python -m pip install -q -e ".[train,dev,rllib]"
.venv/bin/synthenv doctor || echo "setup.sh: some backends do not work here (see above); the others do"
echo "setup.sh: done. Activate with: source .venv/bin/activate"
