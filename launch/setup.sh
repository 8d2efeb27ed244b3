#!/usr/bin/env bash
# Installs what pgkm builds, tests and runs with: Debian packages (compiler, CMake,
# GoogleTest, Google Benchmark, HDF5, yaml-cpp, nlohmann-json, CLI11, clang-format, Open MPI,
# Slurm with munge for the batch-job test, and iproute2 and util-linux (`ip netns`,
# `unshare`) for the multi-host test) and the Python packages the end-to-end tests
# and the quickstart's fidelity check use (numpy, h5py, safetensors, tokenizers). Idempotent.
set -euo pipefail
sudo_cmd=""
if [ "$(id -u)" != 0 ]; then sudo_cmd="sudo"; fi
packages=(cmake make g++ libgtest-dev libgmock-dev libbenchmark-dev clang-format
          libhdf5-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev
          openmpi-bin libopenmpi-dev slurm-wlm munge iproute2 util-linux)
# python3 may come from elsewhere (pyenv); ask apt for it only when there is none with pip.
if ! python3 -m pip --version >/dev/null 2>&1; then packages+=(python3 python3-pip); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "pgkm setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -q
  $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if ! python3 -c "import numpy, h5py, safetensors, tokenizers" 2>/dev/null; then
  echo "pgkm setup: installing numpy h5py safetensors tokenizers (pip)"
  # Debian's own python3 refuses pip installs unless told (PEP 668).
  python3 -m pip install -q numpy h5py safetensors tokenizers ||
    python3 -m pip install -q --break-system-packages numpy h5py safetensors tokenizers
fi
