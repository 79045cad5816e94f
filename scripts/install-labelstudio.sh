#!/usr/bin/env bash
# A real Label Studio for the round-trip tests (tests/test_labelstudio_server.py), in its own
# virtual environment .labelstudio-venv so that its ~1 GB of pins (Django and friends) stay out
# of the project's lock file. Idempotent and silent when it is already installed; `make test`
# runs it. Needs Python >= 3.10 and the package index (PyPI) once.
set -euo pipefail

VERSION=1.23.2
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LABELSTUDIO_VENV:-$HERE/.labelstudio-venv}"
PYTHON="${PYTHON:-python3.11}"
STAMP="$VENV/.installed-$VERSION"

# One install at a time: `make test` starts one in the background while the tests run, and the
# test fixture's own call waits here for it instead of installing over it.
exec 9>"$VENV.lock"
flock 9

if [ -f "$STAMP" ] && [ -x "$VENV/bin/label-studio" ]; then
  exit 0
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "install-labelstudio: $PYTHON not found; set PYTHON=... to a Python >= 3.10." >&2
  exit 1
fi

echo "install-labelstudio: installing label-studio==$VERSION into $VENV (once, ~1 GB, a minute or two)"
rm -rf "$VENV"
if ! "$PYTHON" -m venv "$VENV"; then
  echo "install-labelstudio: '$PYTHON -m venv' failed (on Debian: apt-get install python3-venv)." >&2
  rm -rf "$VENV"
  exit 1
fi
LOG="$VENV/install.log"
if ! "$VENV/bin/pip" install --disable-pip-version-check "label-studio==$VERSION" >"$LOG" 2>&1; then
  echo "install-labelstudio: pip could not install label-studio==$VERSION (is PyPI reachable?)." >&2
  echo "install-labelstudio: the last lines of pip's log:" >&2
  tail -n 5 "$LOG" >&2
  mv "$LOG" "${TMPDIR:-/tmp}/install-labelstudio.log" 2>/dev/null || true
  rm -rf "$VENV"
  exit 1
fi
touch "$STAMP"
echo "install-labelstudio: label-studio $VERSION installed in $VENV"
