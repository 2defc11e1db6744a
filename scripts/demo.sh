#!/usr/bin/env bash
# Set up .venv if needed and run the main job on the built-in defaults: the whole pipeline on the demo
# profile (ML-100K, SASRec student, SmolLM2-135M teacher on the CPU, export, distillation, report).
# Extra arguments go to `recdistill pipeline` (e.g. `--profile smoke` for a one-minute check).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TOKENIZERS_PARALLELISM=false
exec .venv/bin/recdistill pipeline --profile demo "$@"
