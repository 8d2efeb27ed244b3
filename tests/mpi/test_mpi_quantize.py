#!/usr/bin/env python3
"""`mpiexec -n N pgkm quantize`: results independent of N, failures end the job, resume.

Environment: PGKM_BIN (the pgkm binary), MPIEXEC (mpiexec), PGKM_SOURCE_DIR (repo root).
Exits 77 (skipped) when numpy or h5py is missing.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover
    print(f"skipping: {e}")
    sys.exit(77)

sys.path.insert(0, os.path.join(os.environ.get("PGKM_SOURCE_DIR", "."), "tests", "e2e"))
import make_models as mm  # noqa: E402

sys.path.insert(0, os.path.join(os.environ.get("PGKM_SOURCE_DIR", "."), "tests"))
from archive_h5py_check import read_codes  # noqa: E402

PGKM = os.path.abspath(os.environ.get("PGKM_BIN", "build/launch/pgkm"))
MPIEXEC = os.environ.get("MPIEXEC", "mpiexec")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OMPI_MCA_rmaps_base_oversubscribe="1", OMP_NUM_THREADS="1")


def mpi(n, *args):
    return [MPIEXEC, "-n", str(n), "--oversubscribe", "--bind-to", "none", PGKM, *args]


def run(n, *args, timeout=300):
    return subprocess.run(mpi(n, *args), env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def layers_of(path):
    """{layer: (centroids, codes, counts)} read with h5py (schema v2 packs the codes and
    stores no counts: they are the codes' histogram)."""
    out = {}
    with h5py.File(path, "r") as f:
        for n, g in f["layers"].items():
            codes = read_codes(f, g).astype(np.int64)
            counts = np.bincount(codes, minlength=int(g.attrs["n_centroids"]))
            out[n] = (g["centroids"][()], codes, counts)
    return out


def assert_same_layers(test, a, b, label):
    la, lb = layers_of(a), layers_of(b)
    test.assertEqual(sorted(la), sorted(lb), label)
    for name in la:
        for x, y, what in zip(la[name], lb[name], ("centroids", "codes", "counts")):
            test.assertTrue(np.array_equal(x, y), f"{label}: {name}/{what} differs")


class Workdir(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.dir = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, tensors, config):
        mm.write_safetensors(self.path(name + ".safetensors"), tensors)
        with open(self.path(name + ".yaml"), "w") as f:
            f.write(config)
        return self.path(name + ".safetensors"), self.path(name + ".yaml")


class RankCountIndependence(Workdir):
    """Codebooks and codes are byte-identical for -n 1..4, sharded or not, and the pruned
    search of every run equals the brute-force search of one rank."""

    def test_every_algorithm(self):
        model, config = self.write("small", mm.small_model(), mm.SMALL_CONFIG)
        for algo in ("pg", "pg-base", "ipq"):
            ref = self.path(f"{algo}-n1.h5")
            r = run(1, "quantize", model, "--config", config, "--out", ref, "--algo", algo,
                    "--iters", "4", "--search", "brute")
            self.assertEqual(r.returncode, 0, r.stderr)
            for n, threshold in ((2, "1"), (3, "1"), (2, "0"), (3, "0"), (4, "0")):
                out = self.path(f"{algo}-n{n}-t{threshold}.h5")
                r = run(n, "quantize", model, "--config", config, "--out", out, "--algo", algo,
                        "--iters", "4", "--shard-threshold", threshold)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(f"on {n} ranks", r.stdout)
                assert_same_layers(self, ref, out, f"{algo} -n {n} --shard-threshold {threshold}")

    def test_importance_with_token_weights(self):
        # Column scales for the linears and token counts for the embedding: every algorithm
        # gives the same codebooks and codes on 1 rank (brute force) and 2-3 ranks,
        # sharded or not.
        model, config = self.write("small", mm.small_model(), mm.SMALL_CONFIG)
        rng = np.random.default_rng(9)
        counts = np.zeros(100, np.float32)
        counts[rng.integers(0, 100, 40)] += rng.integers(1, 30, 40).astype(np.float32)
        stats = [("embed_tokens.weight", counts),
                 ("layers.0.fc1.weight", rng.gamma(1.0, 1.0, 32).astype(np.float32)),
                 ("layers.0.fc2.weight", rng.gamma(1.0, 1.0, 64).astype(np.float32))]
        importance = self.path("imp.safetensors")
        mm.write_safetensors(importance, [mm.Tensor(n, "F32", [len(v)], mm.encode(v, "F32"))
                                          for n, v in stats])
        weighted = ["--importance", importance, "--importance-token-weight", "4"]
        for algo in ("pg", "pg-base", "ipq"):
            ref = self.path(f"w-{algo}-n1.h5")
            r = run(1, "quantize", model, "--config", config, "--out", ref, "--algo", algo,
                    "--iters", "4", "--search", "brute", *weighted)
            self.assertEqual(r.returncode, 0, r.stderr)
            plain = self.path(f"p-{algo}-n1.h5")
            r = run(1, "quantize", model, "--config", config, "--out", plain, "--algo", algo,
                    "--iters", "4", *weighted[:2])
            self.assertEqual(r.returncode, 0, r.stderr)
            emb = "embed_tokens.weight"
            self.assertFalse(np.array_equal(layers_of(ref)[emb][0], layers_of(plain)[emb][0]),
                             f"{algo}: the token weights changed nothing")
            for n, threshold in ((2, "1"), (3, "0")):
                out = self.path(f"w-{algo}-n{n}-t{threshold}.h5")
                r = run(n, "quantize", model, "--config", config, "--out", out, "--algo", algo,
                        "--iters", "4", "--shard-threshold", threshold, *weighted)
                self.assertEqual(r.returncode, 0, r.stderr)
                assert_same_layers(self, ref, out, f"weighted {algo} -n {n} -t {threshold}")


BAD_CONFIG = """\
pgkm: 1
defaults: {block_size: 4, n_centroids: 16}
rules:
  - match: '[ab]\\.weight'
"""


class Failures(Workdir):
    def test_bad_tensor_on_another_rank_ends_the_job(self):
        # Two layers, no sharding: the larger goes to rank 0, the smaller (with a NaN) to 1.
        rng = np.random.default_rng(5)
        bad = mm.weight(rng, [32, 32])
        bad[3, 7] = np.nan
        tensors = [mm.Tensor("a.weight", "F32", [64, 64], mm.encode(mm.weight(rng, [64, 64]), "F32")),
                   mm.Tensor("b.weight", "F32", [32, 32], mm.encode(bad, "F32"))]
        model, config = self.write("bad", tensors, BAD_CONFIG)
        out = self.path("bad.h5")
        start = time.monotonic()
        r = run(2, "quantize", model, "--config", config, "--out", out, "--shard-threshold",
                "10", timeout=120)
        self.assertNotEqual(r.returncode, 0)
        self.assertLess(time.monotonic() - start, 60)
        self.assertIn("pgkm: error: rank 1 on", r.stderr)
        self.assertIn("b.weight", r.stderr)
        self.assertIn("is nan", r.stderr)
        self.assertFalse(os.path.exists(out), "archive finalised after a failure")

    def test_killed_rank_then_resume_equals_uninterrupted(self):
        model, config = self.write("big", mm.big_model(n_layers=6, rows=512, cols=256),
                                   mm.BIG_CONFIG)
        args = ["quantize", model, "--config", config, "--iters", "25", "--threads", "1",
                "--shard-threshold", "10"]
        ref = self.path("ref.h5")
        r = run(1, *args, "--out", ref)
        self.assertEqual(r.returncode, 0, r.stderr)

        out = self.path("out.h5")
        proc = subprocess.Popen(mpi(2, *args, "--out", out), env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # rank 0 prints a line per finished layer
        self.assertIn("[", first, "no layer finished before the job ended")
        victim = rank_pid(1, out)
        os.kill(victim, signal.SIGKILL)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            self.fail("job still running 60 s after a rank was killed")
        self.assertNotEqual(proc.returncode, 0)
        self.assertFalse(os.path.exists(out))

        r = run(2, *args, "--out", out, "--resume")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("(resumed)", r.stdout)
        assert_same_layers(self, ref, out, "resumed after kill -9")
        self.assertFalse(os.path.exists(out + ".parts"), "checkpoints left after success")


def rank_pid(rank, out, timeout=30):
    """The pid of the pgkm process of MPI rank `rank` writing `out`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
                if os.fsencode(PGKM) not in cmd or os.fsencode(out) not in cmd:
                    continue
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read().split(b"\0")
                if f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
                    return int(pid)
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError(f"no process for rank {rank}")


if __name__ == "__main__":
    unittest.main()
