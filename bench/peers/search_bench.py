#!/usr/bin/env python3
"""Pruned vs brute-force assignment, and both against faiss.Kmeans, in one run.

    python3 bench/peers/search_bench.py [--threads 2] [--repeats 3] [--big-repeats 1]
                                        [--cases attention,fc,embedding,llama]
                                        [--out bench/results/search_bench.json]

For each case, on the same float32 data, with the same threads and 15 iterations:
`bench_kmeans --algo pg-base --search brute`, `--search pruned` and faiss.Kmeans (as in
faiss_kmeans.py: no subsampling, K distinct random points to start). Reported: seconds of
assignment per iteration (bench_kmeans' `seconds_assign_per_iteration`, averaged over all
iterations, median over repeats), seconds per iteration (assignment + update), the
fraction of centroids the pruned search scored, whether brute and pruned gave the same
codes and centroids (digests), and the objective against faiss's SSE to its final
centroids (computed with faiss's exact IndexFlatL2, like with like).

Cases (the paper's RoBERTa shapes, with real all-MiniLM-L6-v2 weights in fairseq's
PQ layout where the shape allows):
  attention  MiniLM layer 0 intermediate.dense [1536, 384], b=4:  147,456 x 4, K=3072
  fc         MiniLM layers 0-1 intermediate+output, b=8:          294,912 x 8, K=3072
  embedding  MiniLM word embedding [30522, 384], b=16:            732,528 x 16, K=768
  llama      synthetic LLaMA-7B-shaped 4096 x 4096, b=8:        2,097,152 x 8, K=4096
             (normal(0, 0.02) with 0.1% of entries x U[5, 10], as make_roberta_model.py)
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

ITERS = 15


def case_data(name: str) -> tuple[np.ndarray, int]:
    """(points [n, b], K) of one case."""
    if name == "attention":
        return common.load_minilm_layer("encoder.layer.0.intermediate.dense.weight", 4), 3072
    if name == "fc":
        parts = [common.load_minilm_layer(f"encoder.layer.{i}.{m}.dense.weight", 8)
                 for i in (0, 1) for m in ("intermediate", "output")]
        return np.ascontiguousarray(np.concatenate(parts)), 3072
    if name == "embedding":
        return common.load_minilm_layer("embeddings.word_embeddings.weight", 16), 768
    if name == "llama":
        rng = np.random.default_rng(0)
        w = rng.normal(0.0, 0.02, (4096, 4096)).astype(np.float32)
        mask = rng.random(w.shape) < 0.001
        w[mask] *= rng.uniform(5.0, 10.0, int(mask.sum())).astype(np.float32)
        return common.pq_layout(w, 8), 4096
    raise SystemExit(f"unknown case {name!r}")


def sse_to(faiss, x: np.ndarray, centroids: np.ndarray) -> float:
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    d, _ = index.search(x, 1)
    return float(d.astype(np.float64).sum())


def run_faiss(faiss, x: np.ndarray, k: int, threads: int, repeats: int) -> dict:
    faiss.omp_set_num_threads(threads)
    per_iter, km = [], None
    for r in range(repeats):
        km = faiss.Kmeans(x.shape[1], k, niter=ITERS, seed=r, verbose=False, spherical=False,
                          max_points_per_centroid=math.ceil(len(x) / k) + 1)
        t0 = time.perf_counter()
        km.train(x)
        per_iter.append((time.perf_counter() - t0) / ITERS)
    return {"seconds_per_iteration": common.median(per_iter),
            "seconds_per_iteration_repeats": per_iter,
            "sse": sse_to(faiss, x, km.centroids)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", default=str(common.DEFAULT_BENCH))
    ap.add_argument("--cases", default="attention,fc,embedding,llama")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big-repeats", type=int, default=1, help="repeats of the llama case")
    ap.add_argument("--out", default=str(common.RESULTS / "search_bench.json"))
    args = ap.parse_args()
    try:
        import faiss
    except ImportError:
        raise SystemExit("faiss is not installed: pip install faiss-cpu")
    bench = Path(args.bench)
    if not bench.is_file():
        raise SystemExit(f"{bench} missing: cmake --build build -j2 --target bench_kmeans")
    tmp = Path(tempfile.mkdtemp(prefix="pgkm_search_"))

    cases, rows = [], []
    for name in [c for c in args.cases.split(",") if c]:
        x, k = case_data(name)
        n, b = x.shape
        reps = args.big_repeats if name == "llama" else args.repeats
        f32 = common.write_f32(x, tmp / f"{name}.f32")
        print(f"[search_bench] {name}: n={n} b={b} K={k} repeats={reps}", file=sys.stderr,
              flush=True)
        runs = {}
        for search in ("brute", "pruned"):
            cpath = tmp / f"{name}_{search}.f32"
            res = common.run_bench(bench, f32, n, b, k, "pg-base", ITERS, args.threads, 0, reps,
                                   centroids_out=cpath, extra=["--search", search])
            cent = np.fromfile(cpath, dtype="<f4").reshape(k, b)
            res["sse"] = sse_to(faiss, x, cent)
            res.pop("per_iteration", None)
            runs[search] = res
        fa = run_faiss(faiss, x, k, args.threads, reps)
        br, pr = runs["brute"], runs["pruned"]
        case = {
            "case": name, "n": n, "b": b, "k": k, "iters": ITERS, "threads": args.threads,
            "repeats": reps, "brute": br, "pruned": pr, "faiss": fa,
            "identical": br["codes_digest"] == pr["codes_digest"] and
                         br["centroids_digest"] == pr["centroids_digest"],
            "scored_fraction": pr["layer_stats"]["scored_fraction"],
            "assign_speedup": common.ratio(br["seconds_assign_per_iteration"],
                                           pr["seconds_assign_per_iteration"]),
            "iteration_speedup": common.ratio(br["seconds_per_iteration"],
                                              pr["seconds_per_iteration"]),
            "faiss_over_pruned": common.ratio(fa["seconds_per_iteration"],
                                              pr["seconds_per_iteration"]),
            "sse_pruned_over_faiss": common.ratio(pr["sse"], fa["sse"]),
        }
        cases.append(case)
        rows.append([name, n, b, k, reps, br["seconds_assign_per_iteration"],
                     pr["seconds_assign_per_iteration"], case["assign_speedup"],
                     case["scored_fraction"], br["seconds_per_iteration"],
                     pr["seconds_per_iteration"], fa["seconds_per_iteration"],
                     case["faiss_over_pruned"], case["sse_pruned_over_faiss"],
                     "yes" if case["identical"] else "NO"])
        print(f"  assign/it brute {br['seconds_assign_per_iteration']:.4f} s, pruned "
              f"{pr['seconds_assign_per_iteration']:.4f} s; faiss "
              f"{fa['seconds_per_iteration']:.4f} s/it", file=sys.stderr, flush=True)

    headers = ["case", "n", "b", "K", "repeats", "brute assign s/it", "pruned assign s/it",
               "assign speed-up", "scored fraction", "brute s/it", "pruned s/it",
               "faiss s/it", "faiss/pruned", "SSE pruned/faiss", "brute == pruned"]
    table = common.markdown_table(headers, rows)
    out = {"what": "pg-base brute vs pruned search vs faiss.Kmeans, 15 iterations",
           "machine": common.machine_info(), "versions": {"faiss": faiss.__version__},
           "cases": cases, "table_markdown": table}
    common.write_json_atomic(out, Path(args.out))
    print(table)
    print(f"\nwrote {args.out}")
    return 0 if all(c["identical"] for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
