#!/usr/bin/env bash
# Install the system packages Musika Bridge uses (JACK, PortAudio, FluidSynth, soundfonts, drum kits, VST3
# plugins for tests). As root with apt-get they are installed; otherwise the missing ones are listed.
# Usage: scripts/system_deps.sh [run|test]
set -u
mode=${1:-test}
run_pkgs="libportaudio2 libjack-jackd2-0 jackd2 libsndfile1"
test_pkgs="$run_pkgs fluidsynth fluid-soundfont-gm timgm6mb-soundfont hydrogen-drumkits zam-plugins iproute2 ffmpeg
  jack-midi-clock liblo-tools aubio-tools"
pkgs=$run_pkgs
[ "$mode" = test ] && pkgs=$test_pkgs

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "system_deps: not a Debian/Ubuntu system; make sure these (or your OS's equivalents) are installed:"
  echo "  $pkgs"
  exit 0
fi
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system_deps: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
    echo "system_deps: apt-get failed to install:$missing" >&2; exit 1; }
else
  echo "system_deps: missing system packages:$missing"
  echo "  install them with: sudo apt-get install$missing"
  echo "  (continuing; features that need them will say so, and their tests are skipped)"
fi
