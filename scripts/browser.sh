#!/usr/bin/env bash
# Make sure Debian's headless chromium is there for the browser tests and the map benchmark, with a
# Chinese system font as every Chinese workstation has (WenQuanYi Micro Hei; the pages also serve
# Noto Sans SC for clients without one). Playwright drives chromium through executable_path; no
# browser is ever downloaded by a test tool.
#
#   scripts/browser.sh ensure   install chromium (as root) when missing
set -euo pipefail

CHROMIUM="${GISAPP_CHROMIUM:-/usr/bin/chromium}"
log() { printf 'browser: %s\n' "$*" >&2; }

PACKAGES=""
[ -x "$CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || PACKAGES="chromium"
[ -n "$(fc-list :lang=zh 2>/dev/null || true)" ] || PACKAGES="$PACKAGES fonts-wqy-microhei"
if [ -z "$PACKAGES" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  log "missing for the browser tests:$PACKAGES (and this is not root)."
  log "Install as root:  apt-get install -y$PACKAGES"
  log "(or point GISAPP_CHROMIUM at a chromium binary)"
  exit 1
fi
log "installing$PACKAGES"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || log "apt-get update failed; trying the install with the cached lists"
apt-get install -y -qq --no-install-recommends $PACKAGES >/dev/null
[ -x "$CHROMIUM" ] || command -v chromium >/dev/null 2>&1 || { log "chromium still missing after install"; exit 1; }
