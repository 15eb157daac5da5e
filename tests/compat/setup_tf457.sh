#!/usr/bin/env bash
# A second venv with transformers 4.57.6 (the last 4.x), to load checkpoints saved under 5.x.
set -euo pipefail
venv="${1:-.venv-tf457}"
if [ ! -f "$venv/.installed" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch==2.13.0  # the local CPU wheel first, never a CUDA download
  "$venv/bin/pip" install --quiet "transformers==4.57.6" safetensors
  touch "$venv/.installed"
fi
