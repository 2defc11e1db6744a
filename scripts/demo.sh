#!/usr/bin/env bash
# Set up .venv if needed and run the main job on the built-in defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TOKENIZERS_PARALLELISM=false
.venv/bin/recdistill data prepare "$@"
exec .venv/bin/recdistill train student "$@"
