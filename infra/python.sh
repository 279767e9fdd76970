#!/usr/bin/env bash
# Prints the path of a Python with tidelake's test clients (infra/requirements-test.txt), creating the
# virtual environment on first use in the cache folder, keyed by the requirements' hash.
#
# Environment:
#   TIDELAKE_CACHE   cache folder kept across runs (default: ~/.cache/tidelake)
#   PYTHON           the interpreter to build the environment from (default: python3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
requirements="$here/requirements-test.txt"
cache="${TIDELAKE_CACHE:-$HOME/.cache/tidelake}"
key="$(sha256sum "$requirements" | cut -c1-12)"
venv="$cache/venv-$key"
mkdir -p "$cache"
# Tests and scripts may ask for the environment at the same time: one creates it, the others wait.
exec 9>"$cache/.venv-$key.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
  echo "python.sh: creating $venv" >&2
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
