#!/usr/bin/env python3
"""Markdown table and SVG plot of bench/quality/importance_sweep.sh's results: mean
cosine / top-1 agreement per config x setting x algorithm, plain and weighted.

Usage: python3 bench/quality/importance_table.py [RESULTS.jsonl ...] [--svg OUT.svg]
"""
import json
import math
import sys
from collections import OrderedDict


SERIES = [("ipq", "#d62728"), ("pg-base", "#1f77b4"), ("pg", "#2ca02c")]


def setting(r):
    """'plain', or the importance setting of a run: alpha and, when used, the token weight."""
    if r["importance_exponent"] is None:
        return "plain"
    beta = r.get("token_weight") or 0
    return f"alpha={r['importance_exponent']:g}" + (f", beta={beta:g}" if beta else "")


def svg_plot(rows, path, title):
    """Mean cosine against ratio, one line per algorithm and setting, as a standalone SVG
    (no plotting library needed)."""
    w, h, left, right, top, bottom = 760, 440, 60, 215, 30, 45
    pts = [(r["tracker_ratio"], r["mean_cosine"]) for r in rows.values()]
    x0, x1 = min(p[0] for p in pts) - 0.3, max(p[0] for p in pts) + 0.3
    step = 0.05  # y grid; the axis starts at the grid line below the lowest point
    y0, y1 = math.floor((min(p[1] for p in pts) - 0.01) / step) * step, 1.0
    lines = round((y1 - y0) / step)
    sx = lambda x: left + (x - x0) / (x1 - x0) * (w - left - right)
    sy = lambda y: top + (y1 - y) / (y1 - y0) * (h - top - bottom)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{left}" y="18" font-size="13">{title}</text>']
    for i in range(lines + 1):
        y = y0 + step * i
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
                   f'stroke="#ddd"/><text x="{left - 6}" y="{sy(y) + 4:.1f}" '
                   f'text-anchor="end">{y:.2f}</text>')
    for x in range(int(x0) + 1, int(x1) + 1):
        out.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{top}" y2="{h - bottom}" '
                   f'stroke="#eee"/><text x="{sx(x):.1f}" y="{h - bottom + 15}" '
                   f'text-anchor="middle">{x}</text>')
    out.append(f'<line x1="{left}" x2="{w - right}" y1="{sy(0.95):.1f}" y2="{sy(0.95):.1f}" '
               f'stroke="#888" stroke-dasharray="2,3"/>')
    out.append(f'<text x="{(left + w - right) / 2}" y="{h - 8}" text-anchor="middle">'
               f'compression ratio (fairseq SizeTracker)</text>')
    out.append(f'<text transform="translate(16,{(top + h - bottom) / 2}) rotate(-90)" '
               f'text-anchor="middle">mean cosine to the original (222 sentences)</text>')
    settings = sorted({k[1] for k in rows}, key=lambda s: (s != "plain", s))
    legend_y = top + 10
    for si, st in enumerate(settings):
        dash = ' stroke-dasharray="5,4"' if st == "plain" else ""
        for algo, color in SERIES:
            line = sorted((r["tracker_ratio"], r["mean_cosine"])
                          for k, r in rows.items() if k[1] == st and k[2] == algo)
            if not line:
                continue
            d = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line)
            out.append(f'<polyline points="{d}" fill="none" stroke="{color}" '
                       f'stroke-width="1.6"{dash}/>')
            for x, y in line:
                out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.8" fill="{color}"/>')
            lx = w - right + 12
            out.append(f'<line x1="{lx}" x2="{lx + 22}" y1="{legend_y}" y2="{legend_y}" '
                       f'stroke="{color}" stroke-width="1.6"{dash}/>'
                       f'<text x="{lx + 28}" y="{legend_y + 4}">{algo} {st}</text>')
            legend_y += 16
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main(argv):
    paths = []
    svg = None
    args = list(argv)
    if "--svg" in args:
        i = args.index("--svg")
        svg = args[i + 1]
        del args[i:i + 2]
    paths = args or ["bench/quality/results/importance.jsonl"]
    runs = [json.loads(l) for p in paths for l in open(p) if l.strip()]
    rows = OrderedDict()
    for r in runs:  # the last run of a setting wins
        rows[(r["config"], setting(r), r["algo"])] = r
    configs = sorted({k[0] for k in rows}, key=lambda c: min(
        rows[k]["tracker_ratio"] for k in rows if k[0] == c))
    settings = sorted({k[1] for k in rows}, key=lambda s: (s != "plain", s))
    algos = [a for a, _ in SERIES]
    print("| config | importance | ratio | " + " | ".join(algos) + " |")
    print("|---|---|---|" + "---|" * len(algos))
    for c in configs:
        for a in settings:
            cells = [rows.get((c, a, g)) for g in algos]
            if not any(cells):
                continue
            ratio = next(x["tracker_ratio"] for x in cells if x)
            text = [f"{x['mean_cosine']:.3f} / {x['top1_agreement']:.3f}" if x else "-"
                    for x in cells]
            name = c.split("/")[-1].replace(".yaml", "")
            print(f"| {name} | {a} | {ratio:.2f} | " + " | ".join(text) + " |")
    if svg:
        svg_plot(rows, svg, "all-MiniLM-L6-v2: fidelity against compression, plain and "
                 "importance-weighted")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
