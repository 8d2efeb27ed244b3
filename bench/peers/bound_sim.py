#!/usr/bin/env python3
"""How many points could skip the search entirely, per Lloyd pass (numpy + faiss).

    python3 bench/peers/bound_sim.py [--cases attention,fc] [--iters 15]

The pruned search (kernels/cpu/pruned_assign.cpp) still touches every point each pass:
it measures its distance to its centroid, sorts it into a tile and scores at least one
group of candidates. Two classic per-point tests would let a point keep its code untouched:

- Hamerly (2010): keep a lower bound l on the distance to the second-closest centroid;
  after an update, l -= the largest drift of any other centroid, and u = d(x, c_a);
  the code cannot change while u < l.
- The s(a) test (Hamerly's first, also Elkan's): u < half the distance from c_a to its
  nearest other centroid.
- Yinyang's global filter (Ding et al. 2015): the centroids fall into G groups (k-means of
  the first centroids, G = K/16 here); a point keeps one lower bound per group, each
  lowered by that group's largest drift; the code cannot change while u < every bound.
  Costs G floats per point.

This simulates plain Lloyd on the search bench's real MiniLM cases (same data, same K)
with exact distances and prints, per pass, the fraction of points each test would let
skip and the fraction whose code actually changes. It measures a one-pass opportunity: every
bound is recomputed exactly after each pass, whereas a real implementation tightens only
the bounds of points it re-scores (skipped points' bounds keep loosening), and needs a
rounding margin; both only lower the figures.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from search_bench import case_data  # noqa: E402


def group_minima(x, centroids, groups, n_groups, own):
    """Per point, the least distance to each group's centroids other than `own`."""
    out = np.empty((x.shape[0], n_groups), dtype=np.float32)
    c2 = (centroids ** 2).sum(1)
    for start in range(0, x.shape[0], 4096):
        xs = x[start:start + 4096]
        d2 = (xs ** 2).sum(1)[:, None] - 2 * xs @ centroids.T + c2[None, :]
        d2[np.arange(len(xs)), own[start:start + 4096]] = np.inf
        mins = np.full((len(xs), n_groups), np.inf, dtype=np.float32)
        for g in range(n_groups):
            mins[:, g] = d2[:, groups == g].min(1)
        out[start:start + 4096] = np.sqrt(np.maximum(mins, 0))
    return out


def simulate(faiss, name: str, iters: int) -> None:
    x, k = case_data(name)
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, dim = x.shape
    centroids = x[np.random.default_rng(0).choice(n, k, replace=False)].copy()
    previous = lower = before = group_lower = None
    n_groups = max(1, k // 16)
    grouping = faiss.Kmeans(dim, n_groups, niter=10, seed=1)
    grouping.train(centroids)
    groups = grouping.index.search(centroids, 1)[1][:, 0]
    print(f"{name}: n={n} b={dim} K={k}")
    for it in range(iters):
        index = faiss.IndexFlatL2(dim)
        index.add(centroids)
        dist2, ids = index.search(x, 2)
        codes = ids[:, 0]
        if previous is not None:
            drift = np.sqrt(((centroids - before) ** 2).sum(1))
            top = np.argsort(drift)[-2:]  # the two largest drifts
            other_max = np.where(previous == top[1], drift[top[0]], drift[top[1]])
            u = np.sqrt(((x - centroids[previous]) ** 2).sum(1))
            hamerly = u < lower - other_max
            nn2, _ = index.search(centroids, 2)
            half_gap = np.sqrt(np.maximum(nn2[:, 1], 0)) / 2
            s_test = u < half_gap[previous]
            group_drift = np.array([drift[groups == g].max(initial=0.0) for g in range(n_groups)])
            yinyang = u < (group_lower - group_drift[None, :]).min(1)
            print(f"  pass {it:2d}: Hamerly skips {hamerly.mean():.3f}, s(a) test skips "
                  f"{s_test.mean():.3f}, Yinyang skips {yinyang.mean():.3f}, codes that "
                  f"change {(codes != previous).mean():.4f}")
        lower = np.sqrt(np.maximum(dist2[:, 1], 0))
        group_lower = group_minima(x, centroids, groups, n_groups, codes)
        previous, before = codes.copy(), centroids.copy()
        sums = np.zeros_like(centroids)
        np.add.at(sums, codes, x)
        counts = np.bincount(codes, minlength=k)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="attention,fc")
    parser.add_argument("--iters", type=int, default=15)
    args = parser.parse_args()
    try:
        import faiss
    except ImportError:
        print("bound_sim.py: needs faiss-cpu (pip install faiss-cpu)", file=sys.stderr)
        return 2
    for name in args.cases.split(","):
        simulate(faiss, name, args.iters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
