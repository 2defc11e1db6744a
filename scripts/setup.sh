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
# The install is editable, so code changes need no reinstall; only pyproject.toml (dependencies, entry
# points) or the extras do. A stamp keyed on both skips the ~30 s pip run when nothing changed.
STAMP="$VENV/.recdistill-install-stamp"
KEY="$(sha256sum pyproject.toml | cut -d' ' -f1) $EXTRAS $(pwd)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] && "$VENV/bin/python" -c "import recdistill" 2>/dev/null; then
  echo "[setup] recdistill[$EXTRAS] already installed (pyproject.toml unchanged)"
else
  echo "[setup] installing recdistill[$EXTRAS]"
  "$VENV/bin/python" -m pip install --quiet -e ".[$EXTRAS]"
  echo "$KEY" > "$STAMP"
fi
echo "[setup] ready: $("$VENV/bin/python" -c 'import torch, recdistill; print(f"recdistill {recdistill.__version__}, torch {torch.__version__}")')"
