#!/usr/bin/env python3
"""pgkm against fairseq's own k-means, fairseq.modules.quantization.pq.em.EM (torch, CPU).

fairseq's EM is loaded at run time from the published package; no fairseq code is in
this repository. Getting it (fairseq does not install with its dependencies on Python
3.11; only em.py, which needs torch alone, is used):

    pip install fairseq==0.12.2 --no-deps
  or
    pip download fairseq==0.12.2 --no-deps --no-binary :all: -d /tmp/fs
    tar xzf /tmp/fs/fairseq-0.12.2.tar.gz -C /tmp/fs   # then --fairseq-em /tmp/fs/fairseq-0.12.2/fairseq/modules/quantization/pq/em.py

em.py is found (in this order) from --fairseq-em, $FAIRSEQ_EM, or the installed
`fairseq` package (importlib.util.find_spec, which does not run fairseq/__init__.py).

Protocol: for each layer of all-MiniLM-L6-v2 (fairseq's PQ layout, W = points.T of
shape [b, N] as fairseq's pq.py passes it) and K, EM(W, K, n_iter, eps=1e-6,
max_tentatives=100 as quantize_model_ passes) runs `--fs-iters` steps (initialize_centroids
then step(i)), timed per step, `--fs-repeats` times with torch.set_num_threads(T);
seconds per iteration = mean step time of a repeat, median over repeats. pgkm's
bench_kmeans runs ipq and pg on the same points with the same T, for the same number of
iterations and for --iters (15). Ratio = fairseq s/iter / pgkm s/iter.
EM's objective is the Frobenius norm ||W - W_hat||, so its sum of squared errors is obj**2.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

LAYERS = ["encoder.layer.0.attention.self.query.weight",
          "encoder.layer.0.intermediate.dense.weight"]

HOW_TO_GET = ("fairseq's em.py not found: pip install fairseq==0.12.2 --no-deps, or pip download "
              "fairseq==0.12.2 --no-deps --no-binary :all: -d /tmp/fs, unpack it and pass "
              "--fairseq-em .../fairseq/modules/quantization/pq/em.py")


def locate_em(explicit: str | None) -> Path:
    for cand in (explicit, os.environ.get("FAIRSEQ_EM")):
        if cand:
            p = Path(cand)
            if p.is_dir():
                p = p / "fairseq" / "modules" / "quantization" / "pq" / "em.py"
            if p.is_file():
                return p
            raise SystemExit(f"{p} does not exist. {HOW_TO_GET}")
    spec = importlib.util.find_spec("fairseq")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc) / "modules" / "quantization" / "pq" / "em.py"
            if p.is_file():
                return p
    raise SystemExit(HOW_TO_GET)


def load_em_module(path: Path):
    spec = importlib.util.spec_from_file_location("fairseq_pq_em", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fairseq_version(em_path: Path) -> str:
    try:
        import importlib.metadata as md
        return md.version("fairseq")
    except Exception:
        return f"unknown (em.py at {em_path})"


def run_fairseq(em_mod, torch, points, k: int, n_iter: int, repeats: int, threads: int,
                seed: int) -> dict:
    torch.set_num_threads(threads)
    W = torch.from_numpy(points.T.copy())  # [b, N], fairseq's (in_features x out_features)
    per_repeat, per_repeat_dist, repeats_out = [], [], []
    for r in range(repeats):
        torch.manual_seed(seed + r)
        random.seed(seed + r)
        em = em_mod.EM(W, n_centroids=k, n_iter=n_iter, eps=1e-6, max_tentatives=100,
                       verbose=False)
        resolved = []
        orig_resolve = em.resolve_empty_clusters

        def counting_resolve(orig=orig_resolve, out=resolved):
            n = orig()
            out.append(n)
            return n

        em.resolve_empty_clusters = counting_resolve
        em.initialize_centroids()
        step_times, error = [], None
        for i in range(n_iter):
            t0 = time.perf_counter()
            try:
                em.step(i)
            except em_mod.EmptyClusterResolveError:
                error = f"EmptyClusterResolveError at iteration {i}"
                step_times.append(time.perf_counter() - t0)
                break
            step_times.append(time.perf_counter() - t0)
        # One bare distance pass (fairseq's E-step without the resolution): the
        # pure assignment cost.
        t0 = time.perf_counter()
        em.compute_distances()
        t_dist = time.perf_counter() - t0
        spi = sum(step_times) / len(step_times)
        per_repeat.append(spi)
        per_repeat_dist.append(t_dist)
        obj = em.objective[-1] if em.objective else None
        repeats_out.append({
            "seed": seed + r, "step_seconds": step_times, "seconds_per_iteration": spi,
            "seconds_distance_pass": t_dist,
            "empty_clusters_resolved_per_iteration": resolved,
            "empty_clusters_resolved": int(sum(resolved)),
            "objective_frobenius": obj, "objective_sse": obj * obj if obj is not None else None,
            "error": error})
    return {"n_iter": n_iter, "repeats": repeats, "threads": threads,
            "seconds_per_iteration": common.median(per_repeat),
            "seconds_per_iteration_repeats": per_repeat,
            "seconds_distance_pass": common.median(per_repeat_dist),
            "empty_clusters_resolved_median": common.median(
                [x["empty_clusters_resolved"] for x in repeats_out]),
            "runs": repeats_out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default=str(common.DEFAULT_BENCH))
    ap.add_argument("--fairseq-em", default=None, help="path to fairseq's em.py or an unpacked sdist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--b", type=int, default=4)
    ap.add_argument("--cases", default="query:256,fc:256,query:1024:1",
                    help="LAYER:K[:FS_REPEATS],... with LAYER query, fc or a full tensor name")
    ap.add_argument("--fs-iters", type=int, default=3)
    ap.add_argument("--fs-repeats", type=int, default=3)
    ap.add_argument("--iters", type=int, default=15, help="pgkm's full run length")
    ap.add_argument("--repeats", type=int, default=5, help="pgkm repeats")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(common.RESULTS / "peers_fairseq.json"))
    ap.add_argument("--tmpdir", default=None)
    args = ap.parse_args()

    em_path = locate_em(args.fairseq_em)
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        raise SystemExit(f"torch does not import ({e}); see bench/peers/README.md")
    em_mod = load_em_module(em_path)

    bench = Path(args.bench)
    if not bench.is_file():
        raise SystemExit(f"{bench} missing: cmake --build build -j2 --target bench_kmeans")
    short_names = {"query": LAYERS[0], "fc": LAYERS[1]}
    plan = []
    for item in (x for x in args.cases.split(",") if x):
        parts = item.split(":")
        plan.append((short_names.get(parts[0], parts[0]), int(parts[1]),
                     int(parts[2]) if len(parts) > 2 else args.fs_repeats))
    tmp = Path(args.tmpdir or tempfile.mkdtemp(prefix="pgkm_peers_"))

    cases, rows = [], []
    for layer, k, fs_repeats in plan:
        pts = common.load_minilm_layer(layer, args.b)
        n = len(pts)
        f32 = common.write_f32(pts, tmp / (layer.replace(".", "_") + f"_b{args.b}.f32"))
        if True:  # one case
            print(f"[fairseq_em] {layer} N={n} b={args.b} K={k} ...", file=sys.stderr, flush=True)
            fs = run_fairseq(em_mod, torch, pts, k, args.fs_iters, fs_repeats,
                             args.threads, args.seed)
            pg = {}
            for algo in ("ipq", "pg"):
                for iters in sorted({args.fs_iters, args.iters}):
                    pg[f"{algo}_{iters}"] = common.run_bench(
                        bench, f32, n, args.b, k, algo, iters, args.threads, args.seed,
                        args.repeats)
            same = args.fs_iters
            case = {
                "layer": layer, "n": n, "b": args.b, "k": k, "threads": args.threads,
                "fairseq": fs, "pgkm": pg,
                "ratio_fairseq_over_ipq": common.ratio(
                    fs["seconds_per_iteration"], pg[f"ipq_{same}"]["seconds_per_iteration"]),
                "ratio_fairseq_over_pg": common.ratio(
                    fs["seconds_per_iteration"], pg[f"pg_{same}"]["seconds_per_iteration"]),
                "ratio_fairseq_over_ipq_15": common.ratio(
                    fs["seconds_per_iteration"],
                    pg[f"ipq_{args.iters}"]["seconds_per_iteration"]),
                "ratio_fairseq_over_pg_15": common.ratio(
                    fs["seconds_per_iteration"],
                    pg[f"pg_{args.iters}"]["seconds_per_iteration"]),
                "ratio_fairseq_distance_pass_over_ipq_assign": common.ratio(
                    fs["seconds_distance_pass"],
                    pg[f"ipq_{same}"]["seconds_assign_per_iteration"]),
            }
            case["meets_20x_target"] = bool(
                case["ratio_fairseq_over_ipq"] and case["ratio_fairseq_over_ipq"] >= 20 and
                case["ratio_fairseq_over_pg"] and case["ratio_fairseq_over_pg"] >= 20)
            cases.append(case)
            short = layer.replace("encoder.layer.0.", "").replace(".weight", "")
            rows.append([short, n, k, fs_repeats, fs["seconds_per_iteration"],
                         fs["empty_clusters_resolved_median"],
                         pg[f"ipq_{same}"]["seconds_per_iteration"],
                         pg[f"pg_{same}"]["seconds_per_iteration"],
                         case["ratio_fairseq_over_ipq"], case["ratio_fairseq_over_pg"],
                         pg[f"ipq_{args.iters}"]["seconds_per_iteration"],
                         pg[f"pg_{args.iters}"]["seconds_per_iteration"],
                         case["ratio_fairseq_over_ipq_15"], case["ratio_fairseq_over_pg_15"]])
            print(f"  fairseq {fs['seconds_per_iteration']:.4f} s/it, ipq "
                  f"{pg[f'ipq_{same}']['seconds_per_iteration']:.5f}, pg "
                  f"{pg[f'pg_{same}']['seconds_per_iteration']:.5f}", file=sys.stderr, flush=True)

    headers = ["layer", "N", "K", "fairseq repeats", "fairseq s/it", "fairseq empties resolved",
               f"ipq s/it ({args.fs_iters} it)", f"pg s/it ({args.fs_iters} it)",
               "fairseq/ipq", "fairseq/pg", f"ipq s/it ({args.iters} it)",
               f"pg s/it ({args.iters} it)", f"fairseq/ipq ({args.iters})",
               f"fairseq/pg ({args.iters})"]
    table = common.markdown_table(headers, rows)
    out = {
        "what": "fairseq EM (pq/em.py) vs pgkm bench_kmeans, seconds per k-means iteration",
        "machine": common.machine_info(),
        "versions": {"torch": torch.__version__, "fairseq": fairseq_version(em_path),
                     "fairseq_em_path": str(em_path)},
        "protocol": {"fs_iters": args.fs_iters, "cases": args.cases,
                     "pgkm_iters": [args.fs_iters, args.iters], "pgkm_repeats": args.repeats,
                     "threads": args.threads, "b": args.b, "seed": args.seed,
                     "fairseq_params": {"eps": 1e-6, "max_tentatives": 100},
                     "ratio": "fairseq median s/iter / pgkm median s/iter (>1: pgkm faster)"},
        "cases": cases, "table_markdown": table}
    common.write_json_atomic(out, Path(args.out))
    print(table)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
