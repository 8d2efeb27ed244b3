#!/usr/bin/env python3
"""pgkm against faiss.Kmeans (faiss-cpu from PyPI: pip install faiss-cpu).

Identical data for both: random normal(0, 0.02) float32 [N, b] from
numpy.random.default_rng(seed) (N = 100000 by default), for b in --bs and K in --ks.

faiss: faiss.Kmeans(d=b, k=K, niter=I, seed=S, max_points_per_centroid=ceil(N/K)+1 (no
subsampling: faiss subsamples when N > K * max_points_per_centroid), verbose=False,
spherical=False), faiss.omp_set_num_threads(T); seconds per iteration = km.train wall
time / niter, median over --repeats (different faiss seeds S+r, as pgkm's results do not
depend on the repeat). Initialization differs: faiss picks K distinct points (random
sample without replacement, one redo); pgkm's ipq samples with replacement (fairseq) and
pg-base uses its partitioning-guided pre-assignment.

Objective: faiss's km.obj[-1] is the sum of squared distances of the last iteration's
assignment (to the centroids before that iteration's update); pgkm's objective is the sum
of squared errors of the last assignment to the updated centroids (means). Both are SSE
over all N points; to compare like with like, both are also recomputed here with numpy
as the SSE of every point to its nearest final centroid (`sse_nearest`).

pgkm: bench_kmeans --algo pg-base and ipq, same data, iterations and threads.
Ratio = faiss s/iter / pgkm s/iter (>1: pgkm faster).
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def run_faiss(faiss, x: np.ndarray, k: int, iters: int, threads: int, seed: int,
              repeats: int) -> dict:
    n, b = x.shape
    faiss.omp_set_num_threads(threads)
    mppc = math.ceil(n / k) + 1
    runs, per_iter = [], []
    km_last = None
    for r in range(repeats):
        km = faiss.Kmeans(b, k, niter=iters, seed=seed + r, max_points_per_centroid=mppc,
                          verbose=False, spherical=False)
        t0 = time.perf_counter()
        km.train(x)
        dt = time.perf_counter() - t0
        nsplit = int(sum(st["nsplit"] for st in km.iteration_stats))
        per_iter.append(dt / iters)
        runs.append({"seed": seed + r, "train_seconds": dt, "seconds_per_iteration": dt / iters,
                     "iterations_recorded": len(km.obj), "obj_last": float(km.obj[-1]),
                     "empty_cluster_splits": nsplit})
        km_last = km
    sse_nearest = common.sse(x, km_last.centroids)
    return {"seconds_per_iteration": common.median(per_iter),
            "seconds_per_iteration_repeats": per_iter,
            "objective": common.median([r_["obj_last"] for r_ in runs]),
            "objective_last_repeat": runs[-1]["obj_last"],
            "sse_nearest_last_repeat": sse_nearest,
            "empty_cluster_splits_median": common.median(
                [r_["empty_cluster_splits"] for r_ in runs]),
            "max_points_per_centroid": mppc, "runs": runs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default=str(common.DEFAULT_BENCH))
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--bs", default="4,8,16")
    ap.add_argument("--ks", default="256,768,3072")
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big-repeats", type=int, default=None,
                    help="repeats where b*K >= 16*3072 (default: --repeats)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(common.RESULTS / "peers_faiss.json"))
    ap.add_argument("--tmpdir", default=None)
    args = ap.parse_args()

    try:
        import faiss
    except ImportError:
        raise SystemExit("faiss is not installed: pip install faiss-cpu")
    bench = Path(args.bench)
    if not bench.is_file():
        raise SystemExit(f"{bench} missing: cmake --build build -j2 --target bench_kmeans")
    tmp = Path(args.tmpdir or tempfile.mkdtemp(prefix="pgkm_peers_"))
    bs = [int(v) for v in args.bs.split(",") if v]
    ks = [int(v) for v in args.ks.split(",") if v]

    cases, rows = [], []
    for b in bs:
        x = common.random_points(args.n, b, args.seed)
        f32 = common.write_f32(x, tmp / f"normal_n{args.n}_b{b}_s{args.seed}.f32")
        for k in ks:
            reps = args.repeats
            if args.big_repeats is not None and b * k >= 16 * 3072:
                reps = args.big_repeats
            print(f"[faiss_kmeans] N={args.n} b={b} K={k} repeats={reps} ...", file=sys.stderr,
                  flush=True)
            fa = run_faiss(faiss, x, k, args.iters, args.threads, args.seed, reps)
            pg = {}
            for algo in ("pg-base", "ipq"):
                cpath = tmp / f"centroids_{algo}_b{b}_k{k}.f32"
                res = common.run_bench(bench, f32, args.n, b, k, algo, args.iters, args.threads,
                                       args.seed, reps, centroids_out=cpath)
                cent = np.fromfile(cpath, dtype="<f4").reshape(k, b)
                res["sse_nearest"] = common.sse(x, cent)
                res.pop("per_iteration", None)
                pg[algo] = res
            case = {"n": args.n, "b": b, "k": k, "iters": args.iters, "threads": args.threads,
                    "repeats": reps, "faiss": fa, "pgkm": pg}
            for algo in ("pg-base", "ipq"):
                case[f"ratio_faiss_over_{algo}"] = common.ratio(
                    fa["seconds_per_iteration"], pg[algo]["seconds_per_iteration"])
                case[f"objective_{algo}_over_faiss"] = common.ratio(
                    pg[algo]["objective"], fa["objective_last_repeat"])
                case[f"sse_nearest_{algo}_over_faiss"] = common.ratio(
                    pg[algo]["sse_nearest"], fa["sse_nearest_last_repeat"])
            case["meets_2x_target"] = bool(case["ratio_faiss_over_pg-base"] >= 2 and
                                           case["ratio_faiss_over_ipq"] >= 2)
            cases.append(case)
            rows.append([b, k, reps, fa["seconds_per_iteration"],
                         pg["pg-base"]["seconds_per_iteration"], pg["ipq"]["seconds_per_iteration"],
                         case["ratio_faiss_over_pg-base"], case["ratio_faiss_over_ipq"],
                         fa["objective_last_repeat"], pg["pg-base"]["objective"],
                         pg["ipq"]["objective"], case["sse_nearest_pg-base_over_faiss"],
                         case["sse_nearest_ipq_over_faiss"], fa["empty_cluster_splits_median"],
                         pg["pg-base"]["empty_clusters"], pg["ipq"]["empty_clusters"]])
            print(f"  faiss {fa['seconds_per_iteration']:.4f} s/it, pg-base "
                  f"{pg['pg-base']['seconds_per_iteration']:.4f}, ipq "
                  f"{pg['ipq']['seconds_per_iteration']:.4f}", file=sys.stderr, flush=True)

    headers = ["b", "K", "repeats", "faiss s/it", "pg-base s/it", "ipq s/it", "faiss/pg-base",
               "faiss/ipq", "faiss obj[-1]", "pg-base obj", "ipq obj",
               "SSE pg-base/faiss", "SSE ipq/faiss", "faiss splits", "pg-base empty",
               "ipq empty"]
    table = common.markdown_table(headers, rows)
    out = {
        "what": "faiss.Kmeans vs pgkm bench_kmeans, seconds per k-means iteration and SSE",
        "machine": common.machine_info(),
        "versions": {"faiss": faiss.__version__},
        "protocol": {"n": args.n, "data": "numpy default_rng(seed).normal(0, 0.02, (n, b)) float32",
                     "iters": args.iters, "threads": args.threads, "seed": args.seed,
                     "faiss_init": "K distinct random points (sample without replacement)",
                     "ratio": "faiss median s/iter / pgkm median s/iter (>1: pgkm faster)",
                     "objective": "faiss obj[-1] (SSE of last assignment, pre-update) vs pgkm "
                                  "objective (SSE after last update); SSE columns: numpy SSE of "
                                  "each point to its nearest final centroid, pgkm / faiss"},
        "cases": cases, "table_markdown": table}
    common.write_json_atomic(out, Path(args.out))
    print(table)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
