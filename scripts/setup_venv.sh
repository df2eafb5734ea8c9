#!/usr/bin/env bash
# Create or refresh the project's virtual environment (what every `make` target runs first).
# Idempotent: a stamp keyed on the requirement files' contents (and the interpreter) makes an up-to-date venv a
# no-op that takes well under a second. A fresh set-up downloads the torch stack (about 5 GB, 1.5 to 3 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp_file="$VENV/.sf2f-stamp"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup: '$PYTHON' not found; install Python 3.10 or newer, or run 'make PYTHON=/path/to/python3 ...'" >&2
  exit 1
fi
"$PYTHON" - <<'PY' || exit 1
import sys
if sys.version_info < (3, 10):
    sys.exit(f"setup: sf2f needs Python 3.10 or newer; {sys.executable} is {sys.version.split()[0]}")
PY

key=$( { cat requirements.txt requirements-nodeps.txt pyproject.toml; "$PYTHON" -c 'import sys; print(sys.version)'; } \
       | sha256sum | cut -c1-32)
if [ -x "$VENV/bin/python" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$key" ]; then
  exit 0
fi

echo "setup: preparing the virtual environment in $VENV (log: $VENV/setup.log)"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
log="$VENV/setup.log"
: > "$log"
pip_install() {
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check "$@" >>"$log" 2>&1; then
    echo "setup: 'pip install $*' failed; the end of $log:" >&2
    grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -n 25 >&2
    exit 1
  fi
}
pip_install -r requirements.txt
# facenet-pytorch's metadata pins an old torch/numpy/Pillow; its real needs are in requirements.txt
pip_install --no-deps -r requirements-nodeps.txt
pip_install --no-deps -e .
echo "$key" > "$stamp_file"
echo "setup: $VENV is ready ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
