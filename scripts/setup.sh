#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install recdistill into it.
#
# torch is installed first, on its own, so that pip does not pull a multi-GB CUDA build as a dependency
# on machines that only need the CPU. Choose another build with TORCH_SPEC, e.g.
#   TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126" bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${EXTRAS:-test}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "[setup] installing $TORCH_SPEC"
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install --quiet $TORCH_SPEC
fi
echo "[setup] installing recdistill[$EXTRAS]"
"$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]"
echo "[setup] ready: $("$VENV/bin/python" -c 'import torch, recdistill; print(f"recdistill {recdistill.__version__}, torch {torch.__version__}")')"
