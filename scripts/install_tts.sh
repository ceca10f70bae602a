#!/usr/bin/env bash
# Install the text-to-speech engines and voices the synthetic corpus uses (training/tts/).
#
# Idempotent and quiet: prints nothing when everything is installed. The MBROLA voices,
# festival's MBROLA voices and pico are in Debian's contrib and non-free sections, so those
# are enabled first (deb822 /etc/apt/sources.list.d/debian.sources or a classic
# /etc/apt/sources.list). Needs root or sudo only when something is missing.
set -euo pipefail

PACKAGES=(
  espeak-ng libespeak-ng1                                  # espeak-ng (ctypes) + --pho
  mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1       # MBROLA diphone voices
  festival festvox-kallpc16k festvox-rablpc16k festvox-kdlpc16k
  festvox-us-slt-hts festvox-us1 festvox-us2 festvox-us3 festvox-en1
  flite                                                    # kal, kal16, awb, rms, slt
  libttspico-utils                                         # pico2wave (en-US, en-GB)
)

log() { printf '[install_tts] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

missing_packages() {
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || printf '%s\n' "$pkg"
  done
}

# Add "contrib non-free" to every Debian apt entry that lacks them. Returns 0 if a file changed.
DEB822_SOURCES=${DEB822_SOURCES:-/etc/apt/sources.list.d/debian.sources}
CLASSIC_SOURCES=${CLASSIC_SOURCES:-/etc/apt/sources.list}

add_component() {  # file, line pattern (ERE), component
  local file=$1 lines=$2 component=$3
  local word="(^|[[:space:]])${component}([[:space:]]|\$)"
  grep -E "$lines" "$file" | grep -Evq "$word" || return 1
  $SUDO sed -i -E "/${lines}/{/${word}/!s/\$/ ${component}/}" "$file"
}

enable_contrib_non_free() {
  local changed=1 component
  for component in contrib non-free; do
    if [ -f "$DEB822_SOURCES" ] && add_component "$DEB822_SOURCES" '^Components:' "$component"; then
      changed=0
    fi
    if [ -f "$CLASSIC_SOURCES" ] \
      && add_component "$CLASSIC_SOURCES" '^deb(-src)?[[:space:]].*debian' "$component"; then
      changed=0
    fi
  done
  return $changed
}

main() {
  local missing
  missing=$(missing_packages)
  [ -z "$missing" ] && return 0

  if [ "$(. /etc/os-release 2>/dev/null && echo "${ID:-}")" = "debian" ]; then
    if enable_contrib_non_free; then
      log "enabled Debian contrib and non-free in apt sources"
    fi
  fi
  # shellcheck disable=SC2086  # one package name per word
  log "installing: $(echo $missing)"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    $missing >/dev/null
  missing=$(missing_packages)
  if [ -n "$missing" ]; then
    # shellcheck disable=SC2086
    log "still missing after apt-get: $(echo $missing)"
    return 1
  fi
}

main "$@"
