#!/usr/bin/env python3
"""CPU speed of the AQLM export against the dense reconstruction of the same archive,
both loaded with transformers and run in the same process, alternating, medians.

    python bench/aqlm_speed.py --dense DENSE_DIR --aqlm AQLM_DIR [--repeats 15]
        [--out bench/results/aqlm_speed.json]

DENSE_DIR is `pgkm reconstruct ARCHIVE --out DENSE_DIR/`, AQLM_DIR `pgkm export ARCHIVE
--format aqlm --out AQLM_DIR/`. Inputs: the first sentences of bench/quality/sentences.txt,
one at a time (batch 1) and as a batch of 32. NUMBA_NUM_THREADS=1: aqlm's CPU kernel is
wrong with more threads (tests/e2e/test_models.py); torch keeps its default threads.
Needs the environment of launch/setup_models.sh.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["NUMBA_NUM_THREADS"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
import transformers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def folder_bytes(d):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dense", required=True)
    ap.add_argument("--aqlm", required=True)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out")
    args = ap.parse_args()
    with open(os.path.join(HERE, "quality", "sentences.txt")) as f:
        sentences = [l.strip() for l in f if l.strip()][:32]
    tok = transformers.AutoTokenizer.from_pretrained(args.dense)
    models = {name: transformers.AutoModel.from_pretrained(path, dtype=torch.float32).eval()
              for name, path in (("dense", args.dense), ("aqlm", args.aqlm))}
    inputs = {"batch 1": tok(sentences[:1], return_tensors="pt"),
              "batch 32": tok(sentences, padding=True, return_tensors="pt")}
    times = {(m, i): [] for m in models for i in inputs}
    with torch.no_grad():
        for m in models.values():  # warm-up: numba compiles aqlm's kernels on first use
            for x in inputs.values():
                m(**x)
        for _ in range(args.repeats):
            for i, x in inputs.items():
                for name, m in models.items():
                    t = time.perf_counter()
                    m(**x)
                    times[(name, i)].append(time.perf_counter() - t)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores "
                   "(shared: other jobs ran at the same time)",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(), "numba_threads": 1,
        "repeats": args.repeats,
        "tokens": {i: int(x["input_ids"].numel()) for i, x in inputs.items()},
        "median_seconds": {f"{m} {i}": statistics.median(v) for (m, i), v in times.items()},
        "folder_bytes": {"dense": folder_bytes(args.dense), "aqlm": folder_bytes(args.aqlm)},
    }
    for i in inputs:
        result["median_seconds"][f"aqlm/dense {i}"] = (
            result["median_seconds"][f"aqlm {i}"] / result["median_seconds"][f"dense {i}"])
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
