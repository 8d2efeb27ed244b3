#!/usr/bin/env python3
"""Shared by the end-to-end tests of the `pgkm` command line (test_cli.py,
test_cli_outputs.py, test_cli_malformed.py, test_robustness.py): the binary, helpers that
read archives, and CliTest, whose tests each run in their own temporary directory.

Environment: PGKM_BIN is the pgkm binary, PGKM_SOURCE_DIR the repository root (both
default to this checkout's build/launch/pgkm and root). Needs numpy, h5py and
safetensors; exits 77 (ctest SKIP_RETURN_CODE) when one is missing. Nothing is
downloaded: every model is written by tests/e2e/make_models.py into a temporary
directory, one per test.
"""
import glob
import math
import os
import subprocess
import sys
import tempfile
import unittest

try:
    import h5py
    import numpy as np
    import safetensors.numpy  # noqa: F401 (re-exported for the tests)
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"SKIP: the end-to-end tests need numpy, h5py and safetensors: {e}")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_models as mm  # noqa: E402,F401 (re-exported)
from pgkm_names import part_file_name  # noqa: E402,F401 (re-exported)

sys.path.insert(0, os.path.dirname(HERE))
from archive_h5py_check import read_codes  # noqa: E402
from compare_outputs import strip_times  # noqa: E402,F401 (re-exported)

SOURCE_DIR = os.path.abspath(
    os.environ.get("PGKM_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE))))
# Absolute: every test runs pgkm with its temporary directory as the working directory.
PGKM = os.path.abspath(
    os.environ.get("PGKM_BIN", os.path.join(SOURCE_DIR, "build", "launch", "pgkm")))
SCHEMA_CHECK = os.path.join(SOURCE_DIR, "tests", "archive_h5py_check.py")
COMPARE_OUTPUTS = os.path.join(HERE, "compare_outputs.py")
MIB = 1024.0 * 1024.0


def run_pgkm(*args, cwd=None, timeout=300):
    return subprocess.run([PGKM, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def size_tracker_bytes(numel, b, k):
    """fairseq SizeTracker: log2(K)/b bits per weight of codes + K*b fp16 centroids."""
    return math.log2(k) / b * numel / 8 + 2 * k * b


def drop_keys(value, keys):
    """JSON value with every key in `keys` removed, at any depth."""
    if isinstance(value, dict):
        return {k: drop_keys(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [drop_keys(v, keys) for v in value]
    return value


def temporaries(path):
    """Temporary files an atomic writer left next to `path` ("<path>.tmp-XXXXXXXX")."""
    return glob.glob(glob.escape(path) + ".tmp*")


def read_layers(archive):
    """{name: {"centroids", "codes", "counts", attrs...}} of an archive, via h5py."""
    out = {}
    with h5py.File(archive, "r") as f:
        for g in f["layers"].values():
            d = {"centroids": g["centroids"][()]}
            d["codes"] = read_codes(f, g)  # unpacked (schema v2 packs them)
            # v2 stores no counts: they are the histogram of the codes.
            d["counts"] = np.bincount(d["codes"].astype(np.int64),
                                      minlength=int(g.attrs["n_centroids"])).astype(np.uint32)
            d["centroids_dtype"] = g["centroids"].dtype
            d["codes_dtype"] = g["codes"].dtype
            d.update({k: g.attrs[k] for k in g.attrs})
            out[str(g.attrs["name"])] = d
    return out


class CliTest(unittest.TestCase):
    """Each test runs in its own temporary directory, self.tmp."""

    def setUp(self):
        self._dir = tempfile.TemporaryDirectory(prefix="pgkm-e2e-")
        self.tmp = self._dir.name

    def tearDown(self):
        self._dir.cleanup()

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def write_text(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def pgkm(self, *args, **kw):
        return run_pgkm(*args, cwd=self.tmp, **kw)

    def assert_ok(self, r):
        self.assertEqual(r.returncode, 0, f"pgkm failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")

    def quantize(self, model, config, out, *extra, iters=3):
        r = self.pgkm("quantize", model, "--config", config, "--out", out, "--iters", iters,
                      *extra)
        self.assert_ok(r)
        return r

    def assert_schema(self, archive):
        r = subprocess.run([sys.executable, SCHEMA_CHECK, archive], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, f"schema check failed:\n{r.stdout}\n{r.stderr}")

    def assert_same_layers(self, a, b, keys=("codes", "centroids", "counts")):
        la, lb = read_layers(a), read_layers(b)
        self.assertEqual(sorted(la), sorted(lb))
        for name in la:
            for k in keys:
                self.assertEqual(la[name][k].dtype, lb[name][k].dtype, f"{name}/{k}")
                self.assertTrue(np.array_equal(la[name][k], lb[name][k]),
                                f"{name}/{k} differ between {a} and {b}")
