#!/usr/bin/env bash
# Install Debian's chromium (used by the dashboard's Playwright test) when it is missing.
# Idempotent: does nothing when /usr/bin/chromium already exists.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "ensure_chromium: $CHROMIUM missing and not root (install the 'chromium' package)" >&2
        exit 1
    fi
fi
echo "ensure_chromium: installing Debian's chromium" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
test -x "$CHROMIUM"
