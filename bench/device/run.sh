#!/usr/bin/env bash
# The GPU check, as one command on a machine that has a GPU, torch and transformers, and nothing else of
# Ember's:
#
#   bash bench/device/run.sh [--small] [--repeats 3] [--no-compile]
#
# run from the repository root with .device-wheels/ carried (made here by bench/device/wheels.sh). It installs
# diffusers, peft and accelerate from those wheels into a folder put on the path before the machine's own
# packages (and whichever of their other dependencies the machine lacks), then runs
# bench/gpu_generation.py once per architecture (SDXL, then FLUX.1-dev), each under its own time limit, so that
# one that runs out of time still leaves the other's figures. Writes to $OUT (a temporary folder if unset):
# machine.txt, pip.log, and sdxl.json / flux.json with their .log files. `--small` checks the whole path on a
# CPU in a few minutes. MODELS=sdxl or MODELS=flux runs one architecture: a device call has at most 10 minutes,
# and both together, with compilation and the hotswap comparison, may need more.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$(mktemp -d)}
PY=${PYTHON:-python3}
SITE=${EMBER_DEVICE_SITE:-/tmp/ember-device-site}
SDXL_LIMIT_S=${SDXL_LIMIT_S:-240}
FLUX_LIMIT_S=${FLUX_LIMIT_S:-420}
MODELS=${MODELS:-sdxl flux}
echo "writing to $OUT"

{ nvidia-smi || true
  "$PY" -c "import sys, torch, transformers; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available()); print('transformers', transformers.__version__)"
} > "$OUT/machine.txt" 2>&1

# Into a folder of its own, put before the machine's packages on the path: no venv, so that whatever
# interpreter holds torch and transformers (system, conda or a venv) keeps them; exactly these packages,
# without dependency resolution (their other dependencies come with torch and transformers).
wanted=(diffusers peft accelerate psutil)
for pair in PIL:pillow requests:requests idna:idna urllib3:urllib3 certifi:certifi \
        charset_normalizer:charset-normalizer; do
    "$PY" -c "import ${pair%%:*}" 2>/dev/null || wanted+=("${pair#*:}")
done
"$PY" -m pip install --no-index --no-deps --upgrade --target "$SITE" --find-links .device-wheels "${wanted[@]}" \
    > "$OUT/pip.log" 2>&1 || { echo "pip failed: see pip.log"; tail -5 "$OUT/pip.log"; exit 2; }

export PYTHONPATH="$SITE:src:bench" HF_HUB_OFFLINE=1
status=0
for model in $MODELS; do
    limit=$SDXL_LIMIT_S; [ "$model" = flux ] && limit=$FLUX_LIMIT_S
    started=$(date +%s)
    timeout "$limit" "$PY" bench/gpu_generation.py --models "$model" "$@" \
        > "$OUT/$model.json" 2> "$OUT/$model.log"
    rc=$?
    echo "$model: exit $rc after $(( $(date +%s) - started )) s (limit $limit s)"
    [ $rc -ne 0 ] && { status=$rc; tail -5 "$OUT/$model.log"; }
    cat "$OUT/$model.json"
done
exit $status
