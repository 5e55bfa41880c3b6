#!/usr/bin/env bash
# Installs the Debian packages Chronus needs.
#   scripts/deps.sh run    what the daemon needs to build and play
#   scripts/deps.sh test   that plus the real sound server, speech engines and
#                          OSC clients the test suite drives
#   scripts/deps.sh bench  that plus scsynth, which scripts/bench peers compares with
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-run}
# The speech engines chronusd runs by default come with the daemon.
run_pkgs=(build-essential pkg-config libasound2-dev libjack-jackd2-dev libpipewire-0.3-dev libspa-0.2-dev libclang-dev
  libasound2-plugins ca-certificates curl
  espeak-ng pocketsphinx pocketsphinx-en-us)
test_pkgs=(pulseaudio pulseaudio-utils jackd2 pipewire pipewire-bin wireplumber dbus alsa-utils liblo-tools python3 python3-pip python3-venv
  systemd procps psmisc valgrind puredata-core supercollider-language lintian man-db prometheus)

case "$mode" in
  run) pkgs=("${run_pkgs[@]}") ;;
  test) pkgs=("${run_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench) pkgs=("${run_pkgs[@]}" "${test_pkgs[@]}" supercollider-server) ;;
  *) echo "usage: scripts/deps.sh run|test|bench (got '$mode')" >&2; exit 64 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "chronus: installing Debian packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# python-osc and the official wyoming package (the tests' Wyoming services are
# built on it) are not packaged for Debian 12: a project-local virtualenv holds them.
if [ "$mode" != run ]; then
  [ -x .test-venv/bin/python ] || /usr/bin/python3 -m venv .test-venv
  if ! .test-venv/bin/python -c 'import pythonosc, wyoming' 2>/dev/null; then
    echo "chronus: installing python-osc and wyoming into .test-venv" >&2
    .test-venv/bin/pip install -q python-osc 'wyoming==1.10.2'
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "chronus: installing the Rust toolchain with rustup" >&2
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy,rustfmt
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
