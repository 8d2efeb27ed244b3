#!/usr/bin/env python3
"""Markdown table (and, with matplotlib, a plot) of bench/quality/importance_sweep.sh's
results: mean cosine / top-1 agreement per config x algorithm, plain and weighted.

Usage: python3 bench/quality/importance_table.py [RESULTS.jsonl] [--plot OUT.png]
"""
import json
import sys
from collections import OrderedDict


def main(argv):
    path = "bench/quality/results/importance.jsonl"
    plot = None
    args = list(argv)
    if "--plot" in args:
        i = args.index("--plot")
        plot = args[i + 1]
        del args[i:i + 2]
    if args:
        path = args[0]
    runs = [json.loads(l) for l in open(path) if l.strip()]
    rows = OrderedDict()
    for r in runs:  # the last run of a setting wins
        alpha = "plain" if r["importance_exponent"] is None else f"alpha={r['importance_exponent']:g}"
        rows[(r["config"], alpha, r["algo"])] = r
    configs = sorted({k[0] for k in rows}, key=lambda c: min(
        rows[k]["tracker_ratio"] for k in rows if k[0] == c))
    alphas = ["plain"] + sorted({k[1] for k in rows} - {"plain"})
    algos = ["ipq", "pg-base", "pg"]
    print("| config | importance | ratio | " + " | ".join(algos) + " |")
    print("|---|---|---|" + "---|" * len(algos))
    for c in configs:
        for a in alphas:
            cells = [rows.get((c, a, g)) for g in algos]
            if not any(cells):
                continue
            ratio = next(x["tracker_ratio"] for x in cells if x)
            text = [f"{x['mean_cosine']:.3f} / {x['top1_agreement']:.3f}" if x else "-"
                    for x in cells]
            name = c.split("/")[-1].replace(".yaml", "")
            print(f"| {name} | {a} | {ratio:.2f} | " + " | ".join(text) + " |")
    if plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for a in alphas:
            for g, m in zip(algos, "os^"):
                pts = sorted((rows[(c, a, g)]["tracker_ratio"], rows[(c, a, g)]["mean_cosine"])
                             for c in configs if (c, a, g) in rows)
                if pts:
                    ax.plot(*zip(*pts), marker=m, linestyle="-" if a != "plain" else "--",
                            label=f"{g} {a}")
        ax.axhline(0.95, color="grey", lw=0.5)
        ax.set_xlabel("compression ratio (fairseq SizeTracker)")
        ax.set_ylabel("mean cosine vs original (222 sentences)")
        ax.set_title("all-MiniLM-L6-v2: importance-weighted PQ")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        fig.savefig(plot, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
