#!/usr/bin/env bash
# Set up from nothing: a virtual environment in .venv with the package, its `mobilenet` command and the dev tools.
# Idempotent; safe to run again. Installs torch from the CPU wheel first, so nothing pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

# Fashion-MNIST, the default dataset (and the tests' real data), from Debian's package where we can install it.
FMNIST=/usr/share/datasets/fashion-mnist
if [ ! -f "$FMNIST/train-images-idx3-ubyte.gz" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian's dataset-fashion-mnist"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "setup: Fashion-MNIST is not in $FMNIST; install Debian's dataset-fashion-mnist (root), or point"
        echo "       MOBILENET_FASHION_MNIST_DIR at a directory with its four IDX files"
    fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
echo "setup: installing torch 2.13.0 (CPU)"
.venv/bin/python -m pip install --quiet "torch==2.13.0"
echo "setup: installing mobilenet, its dev tools and OpenVINO (the second deployment runtime)"
.venv/bin/python -m pip install --quiet -e ".[dev,openvino]"
echo "setup: done; the command is .venv/bin/mobilenet"
