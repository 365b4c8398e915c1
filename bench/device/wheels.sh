#!/usr/bin/env bash
# Download, here, the wheels a GPU machine needs for bench/device/run.sh: the engine's packages that such a
# machine lacks (it has torch and transformers, not diffusers, peft or accelerate, perhaps not requests) at the
# versions of this checkout's .venv, pure-Python or abi3, and Pillow (the newest wheel) for CPython 3.10-3.13,
# in case the machine lacks it. They go to .device-wheels/ (ignored by git), which the device run must carry.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
DEST=.device-wheels
mkdir -p "$DEST"
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
PURE=(diffusers peft accelerate requests idna urllib3 certifi charset-normalizer)
specs=()
for name in "${PURE[@]}"; do specs+=("$name==$(version "$name")"); done
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --platform any -d "$DEST" "${specs[@]}"
# psutil ships abi3 wheels; Pillow one per CPython version
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    --python-version 3.11 -d "$DEST" "psutil==$(version psutil)"
for minor in 10 11 12 13; do
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
        --python-version "3.$minor" -d "$DEST" pillow || echo "no Pillow wheel for 3.$minor"
done
du -sh "$DEST"
ls "$DEST"
