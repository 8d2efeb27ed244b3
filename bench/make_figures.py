#!/usr/bin/env python3
"""Figures for the pgkm paper-style evidence, from bench/results/*.json.

Reads (each optional; a figure whose input is missing is skipped with a message)
  bench/results/paper_tables.json  (bench/paper_tables.py)
  bench/results/quality.json       (bench/paper_tables.py, quality step)
  bench/results/scaling.json       (bench/scaling)
and writes into the same folder
  empty_clusters_by_layer_type.png  mean final empty clusters per layer type, ipq / pg-base / pg,
                                    one panel per compression ratio (paper Tables 1 and 5)
  objective_per_iteration.png       mean k-means objective per iteration relative to iteration 0,
                                    averaged over all quantized layers, one panel per ratio
  scaling.png                       speed-up of `pgkm quantize` vs MPI ranks, with the ideal line
  quality_vs_ratio.png              mean cosine (original vs quantized sentence embeddings) vs
                                    compression ratio per algorithm (only with quality.json)
"""

import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLORS = {"ipq": "#d62728", "pg-base": "#ff7f0e", "pg": "#1f77b4"}
MARKERS = {"ipq": "o", "pg-base": "s", "pg": "^"}
TYPE_SHORT = {
    "embedding": "emb",
    "query": "query",
    "key": "key",
    "value": "value",
    "attn_out": "attn out",
    "fc1": "fc1",
    "fc2": "fc2",
}
plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "figure.dpi": 110})


def load(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def save(fig, path):
    tmp = path + ".tmp.png"
    fig.savefig(tmp, bbox_inches="tight")
    os.replace(tmp, path)
    plt.close(fig)
    print("wrote", os.path.relpath(path, REPO))


def fig_empty(doc, out):
    """Two rows: empty clusters found before resolution (summed over iterations) and final."""
    ratios, algos, types = doc["ratios"], doc["algorithms"], doc["layer_types"]
    rows = [
        ("mean_empty_before_total", "empty clusters found after assignment,\nsummed over iterations (mean per layer)"),
        ("mean_empty_clusters", "empty clusters left in the\nfinal codebook (mean per layer)"),
    ]
    fig, axes = plt.subplots(2, len(ratios), figsize=(4.8 * len(ratios), 7.4), sharey="row", squeeze=False)
    w = 0.8 / len(algos)
    for row, (key, ylabel) in enumerate(rows):
        ymax = 0
        for col, r in enumerate(ratios):
            ax = axes[row][col]
            present = [t for t in types if t in doc["runs"][f"{r}/{algos[0]}"]["by_type"]]
            for i, a in enumerate(algos):
                run = doc["runs"][f"{r}/{a}"]
                vals = [run["by_type"][t][key] for t in present]
                ymax = max([ymax] + vals)
                xs = [j + (i - (len(algos) - 1) / 2) * w for j in range(len(present))]
                if key == "mean_empty_clusters":
                    k = run["totals"]["layers_with_empty"]
                else:
                    k = sum(1 for l in run["layers"] if l["empty_before_total"] > 0)
                n = run["totals"]["layers"]
                bars = ax.bar(xs, vals, w, color=COLORS.get(a), label=f"{a}: {k}/{n} layers")
                for b, v in zip(bars, vals):
                    if v == 0:
                        ax.text(b.get_x() + b.get_width() / 2, 0, "0", ha="center", va="bottom", fontsize=7,
                                color=COLORS.get(a))
            ax.set_xticks(range(len(present)))
            ax.set_xticklabels([TYPE_SHORT[t] for t in present], rotation=30)
            if row == 0:
                ax.set_title(f"compression ratio {doc['runs'][f'{r}/{algos[0]}']['totals']['ratio']:.2f}")
            ax.grid(axis="y", alpha=0.3)
            ax.legend(fontsize=8, loc="upper right", title="layers with any", title_fontsize=8)
        axes[row][0].set_ylabel(ylabel)
        for ax in axes[row]:
            ax.set_ylim(0, ymax * 1.45 + 1)
    n_it = max(l["iterations"] or 0 for l in doc["runs"][f"{ratios[0]}/{algos[0]}"]["layers"])
    fig.suptitle(f"Empty clusters by layer type, all-MiniLM-L6-v2, {n_it} k-means iterations (paper Tables 1 and 5)")
    fig.tight_layout()
    save(fig, os.path.join(out, "empty_clusters_by_layer_type.png"))


def fig_objective(doc, out):
    """Row 1: each algorithm relative to its own iteration 0 (the brief's view).
    Row 2: relative to ipq's final objective of the same layer, so the levels compare."""
    ratios, algos = doc["ratios"], doc["algorithms"]
    ref_algo = "ipq" if "ipq" in algos else algos[0]
    fig, axes = plt.subplots(2, len(ratios), figsize=(4.8 * len(ratios), 7.0), sharey="row", squeeze=False)
    lo = 0.99
    for col, r in enumerate(ratios):
        ref = {l["name"]: l["objective"] for l in doc["runs"][f"{r}/{ref_algo}"]["layers"]}
        for a in algos:
            layers = doc["runs"][f"{r}/{a}"]["layers"]
            n = max(len(l["per_iteration"]) for l in layers)
            own, vs_ref = [], []
            for i in range(n):
                v = [l["per_iteration"][i]["objective"] / l["per_iteration"][0]["objective"]
                     for l in layers if len(l["per_iteration"]) > i and l["per_iteration"][0]["objective"]]
                own.append(sum(v) / len(v) if v else float("nan"))
                v = [l["per_iteration"][i]["objective"] / ref[l["name"]]
                     for l in layers if len(l["per_iteration"]) > i and ref.get(l["name"])]
                vs_ref.append(sum(v) / len(v) if v else float("nan"))
            lo = min([lo] + [y for y in vs_ref if y == y])
            for row, ys in ((0, own), (1, vs_ref)):
                axes[row][col].plot(range(n), ys, marker=MARKERS.get(a), ms=3.5, color=COLORS.get(a), label=a)
        axes[0][col].set_title(f"compression ratio {doc['runs'][f'{r}/{algos[0]}']['totals']['ratio']:.2f}")
        axes[1][col].axhline(1.0, color="gray", lw=0.8, ls="--")
        for row in (0, 1):
            axes[row][col].set_xlabel("k-means iteration")
            axes[row][col].grid(alpha=0.3)
            axes[row][col].legend(fontsize=8)
    axes[1][0].set_ylim(lo - 0.01, 1.1)  # rows share y; iteration 0 (far above) is cut off
    axes[0][0].set_ylabel("objective / own objective at iteration 0\n(mean over all layers)")
    axes[1][0].set_ylabel(f"objective / {ref_algo}'s final objective\n(same layer; mean over all layers)")
    fig.suptitle("k-means objective per iteration (lower is better)")
    fig.tight_layout()
    save(fig, os.path.join(out, "objective_per_iteration.png"))


def fig_scaling(sc, out):
    res = sorted(sc["results"], key=lambda e: e["ranks"])
    ranks = [e["ranks"] for e in res]
    sp = [e["speedup"] for e in res]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(ranks, ranks, "--", color="gray", label="ideal (linear)")
    ax.plot(ranks, sp, marker="o", color=COLORS["pg"], label=f"pgkm quantize --algo {sc.get('algo', 'pg')}")
    for e in res:
        ax.annotate(f"{e['median_s']:.1f} s\neff. {e['efficiency']:.2f}", (e["ranks"], e["speedup"]),
                    textcoords="offset points", xytext=(6, -22), fontsize=8)
    ax.set_xlabel("MPI ranks (1 thread each)")
    ax.set_ylabel(f"speed-up over {sc.get('base_ranks', ranks[0])} rank (median of {sc.get('repeats', '?')})")
    ax.set_xticks(ranks)
    top = max(ranks + sp)
    ax.set_xlim(min(ranks) - 0.2, max(ranks) + 0.5)
    ax.set_ylim(0, top * 1.15)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    model = os.path.basename(sc.get("model", ""))
    ax.set_title(f"Strong scaling, {model}\n({sc.get('machine', {}).get('cpu_count', '?')}-core machine, {sc.get('iters', '?')} iterations)",
                 fontsize=10)
    fig.tight_layout()
    save(fig, os.path.join(out, "scaling.png"))


def fig_quality(q, out):
    algos = []
    for e in q["results"]:
        if e["algorithm"] not in algos:
            algos.append(e["algorithm"])
    has_top1 = any(e.get("top1_agreement") is not None for e in q["results"])
    fig, axes = plt.subplots(1, 2 if has_top1 else 1, figsize=(9.5 if has_top1 else 5, 4), squeeze=False)
    for a in algos:
        es = sorted([e for e in q["results"] if e["algorithm"] == a], key=lambda e: e["ratio"])
        axes[0][0].plot([e["ratio"] for e in es], [e["mean_cosine"] for e in es], marker=MARKERS.get(a),
                        color=COLORS.get(a), label=a)
        if has_top1:
            axes[0][1].plot([e["ratio"] for e in es], [e["top1_agreement"] for e in es], marker=MARKERS.get(a),
                            color=COLORS.get(a), label=a)
    axes[0][0].set_ylabel("mean cosine, original vs quantized")
    axes[0][0].set_title("sentence-embedding cosine")
    if has_top1:
        axes[0][1].set_ylabel("top-1 nearest-neighbour agreement")
        axes[0][1].set_title("top-1 agreement")
    for ax in axes[0]:
        ax.set_xlabel("compression ratio (fairseq SizeTracker)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Quality vs compression, all-MiniLM-L6-v2 ({q.get('n_sentences', '?')} sentences)")
    fig.tight_layout()
    save(fig, os.path.join(out, "quality_vs_ratio.png"))


def main():
    ap = argparse.ArgumentParser(description="pgkm paper figures")
    ap.add_argument("--results", default=os.path.join(REPO, "bench", "results"))
    args = ap.parse_args()
    r = args.results
    doc = load(os.path.join(r, "paper_tables.json"))
    if doc:
        fig_empty(doc, r)
        fig_objective(doc, r)
    else:
        print("paper_tables.json missing: run bench/paper_tables.py", file=sys.stderr)
    sc = load(os.path.join(r, "scaling.json"))
    if sc and sc.get("results"):
        fig_scaling(sc, r)
    else:
        print("scaling.json missing or empty: run bench/scaling", file=sys.stderr)
    q = load(os.path.join(r, "quality.json"))
    if q and q.get("results"):
        fig_quality(q, r)
    else:
        print("quality.json missing: quality_vs_ratio.png not made "
              "(python3 bench/paper_tables.py --quality)", file=sys.stderr)


if __name__ == "__main__":
    main()
