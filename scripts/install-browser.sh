#!/usr/bin/env bash
# Debian's Chromium for the browser tests (tests/web/test_browser.py drives /usr/bin/chromium
# with Playwright). Idempotent and silent when it is already installed; `make test` runs it.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: $CHROMIUM is missing and apt-get is not available here." >&2
  echo "install-browser: install Chromium so that $CHROMIUM exists; the browser tests need it." >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-browser: $CHROMIUM is missing; run as root (or install sudo) to apt-get it:" >&2
    echo "  apt-get install chromium chromium-driver" >&2
    exit 1
  fi
fi

echo "install-browser: installing Debian's chromium and chromium-driver (once) for the browser tests"
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq && \
       $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }; then
  echo "install-browser: apt-get could not install chromium; install it so that $CHROMIUM exists." >&2
  exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "install-browser: chromium installed but $CHROMIUM is still missing." >&2
  exit 1
fi
echo "install-browser: $($CHROMIUM --version 2>/dev/null || echo chromium) installed"
