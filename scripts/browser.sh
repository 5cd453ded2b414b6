#!/usr/bin/env bash
# Make sure Debian's headless chromium is there for the browser tests and the map benchmark.
# Playwright drives it through executable_path; no browser is ever downloaded by a test tool.
#
#   scripts/browser.sh ensure   install chromium (as root) when missing
set -euo pipefail

CHROMIUM="${GISAPP_CHROMIUM:-/usr/bin/chromium}"
log() { printf 'browser: %s\n' "$*" >&2; }

if [ -x "$CHROMIUM" ] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  log "headless chromium is missing and this is not root; the browser tests need it."
  log "Install it as root:  apt-get install -y chromium"
  log "(or point GISAPP_CHROMIUM at a chromium binary)"
  exit 1
fi
log "installing chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || log "apt-get update failed; trying the install with the cached lists"
apt-get install -y -qq --no-install-recommends chromium >/dev/null
[ -x "$CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || { log "chromium still missing after install"; exit 1; }
