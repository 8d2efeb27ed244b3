#!/usr/bin/env python3
"""End-to-end tests of the `pgkm` command line: quantize -> inspect -> reconstruct round trips, the JSON
report, determinism across threads, ranks and searches, and resume.

Environment and requirements: tests/e2e/cli_common.py.

    python3 tests/e2e/test_cli.py -v                  # everything
    python3 tests/e2e/test_cli.py -v TestRoundTrip    # one class (unittest's own syntax)
"""
import json
import math
import os
import re
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_common import (  # noqa: E402
    np, safetensors, mm, strip_times, PGKM, COMPARE_OUTPUTS, MIB, size_tracker_bytes, drop_keys, temporaries, read_layers, CliTest)


class TestRoundTrip(CliTest):
    def progress_lines(self, stdout, names):
        lines = stdout.splitlines()
        layer = [l for l in lines if re.match(r"^\[\s*\d+/\d+\] ", l)]
        self.assertEqual(len(layer), len(names), stdout)
        for i, name in enumerate(sorted(names)):
            self.assertRegex(layer[i], rf"^\[\s*{i + 1}/{len(names)}\] {re.escape(name)} \[")
        self.assertTrue(any(l.startswith("total: ") for l in lines), stdout)
        return layer

    def roundtrip(self, dtype, algo, centroid_dtype="f16", sharded=False):
        tensors = mm.small_model(dtype)
        if sharded:
            model = mm.write_sharded(self.path("model"), tensors)
        else:
            model = self.path("model.safetensors")
            mm.write_safetensors(model, tensors)
        config = self.write_text("config.yaml", mm.SMALL_CONFIG)
        archive = self.path("model.pgkm.h5")
        r = self.quantize(model, config, archive, "--algo", algo, "--centroid-dtype",
                          centroid_dtype)
        for line in self.progress_lines(r.stdout, mm.SMALL_QUANTIZED):
            self.assertIn(f" {algo}: ", line)
        self.assertIn("3 layers quantized, 5 tensors kept", r.stdout)
        self.assertEqual(temporaries(archive), [])
        self.assertFalse(os.path.exists(archive + ".parts"))
        self.assert_schema(archive)

        r = self.pgkm("inspect", archive)
        self.assert_ok(r)
        for name in mm.SMALL_QUANTIZED:
            self.assertRegex(r.stdout, rf"(?m)^{re.escape(name)} .* {dtype} ")
        self.assertRegex(r.stdout, r"(?m)^total: 3 layers quantized, 5 tensors kept")

        out = self.path("reconstructed.safetensors")
        r = self.pgkm("reconstruct", archive, "--out", out)
        self.assert_ok(r)
        self.assertEqual(temporaries(out), [])
        self.check_reconstruction(tensors, archive, out, algo, centroid_dtype)

    def check_reconstruction(self, tensors, archive, out, algo, centroid_dtype):
        got, _ = mm.read_safetensors(out)
        if all(t.dtype != "BF16" for t in tensors):  # safetensors.numpy has no bfloat16
            loaded = safetensors.numpy.load_file(out)
            self.assertEqual(sorted(loaded), sorted(got))
        self.assertEqual(sorted(got), sorted(t.name for t in tensors))
        layers = read_layers(archive)
        self.assertEqual(sorted(layers), mm.SMALL_QUANTIZED)
        for t in tensors:
            g = got[t.name]
            self.assertEqual((g.dtype, g.shape), (t.dtype, t.shape), t.name)
            if t.name not in layers:
                self.assertEqual(g.data, t.data, f"kept tensor {t.name} changed")
                continue
            layer = layers[t.name]
            want_c = np.float16 if centroid_dtype == "f16" else np.float32
            self.assertEqual(layer["centroids_dtype"], want_c, t.name)
            self.assertEqual(str(layer["algorithm"]), algo)
            self.assertEqual(str(layer["source_dtype"]), t.dtype)
            w = mm.dequantize(layer["centroids"], layer["codes"], t.shape,
                              int(layer["block_size"]))
            expected = mm.encode(w, t.dtype)
            self.assertEqual(len(g.data), len(t.data), t.name)
            if g.data != expected:
                a = np.frombuffer(g.data, np.uint8)
                first = int(np.nonzero(a != np.frombuffer(expected, np.uint8))[0][0])
                self.fail(f"{t.name}: reconstructed bytes differ from centroids[codes] "
                          f"(first at byte {first})")
            # The quantized weight is a genuine approximation of the source.
            src = mm.decode(t.data, t.dtype, t.shape).astype(np.float32)
            rel = np.linalg.norm(src - w) / np.linalg.norm(src)
            self.assertLess(rel, 0.9, t.name)

    def test_f32_pg(self):
        self.roundtrip("F32", "pg")

    def test_f32_ipq_f32_centroids(self):
        self.roundtrip("F32", "ipq", centroid_dtype="f32")

    def test_f16_pg_base(self):
        self.roundtrip("F16", "pg-base")

    def test_f16_ipq_f32_centroids(self):
        self.roundtrip("F16", "ipq", centroid_dtype="f32")

    def test_bf16_ipq(self):
        self.roundtrip("BF16", "ipq")

    def test_bf16_pg_f32_centroids(self):
        self.roundtrip("BF16", "pg", centroid_dtype="f32")

    def test_sharded_f32_pg(self):
        self.roundtrip("F32", "pg", sharded=True)

    def test_sharded_bf16_pg_base(self):
        self.roundtrip("BF16", "pg-base", sharded=True)

    def test_config_algorithm_overrides_command_line(self):
        model = self.path("model.safetensors")
        mm.write_safetensors(model, mm.small_model("F32"))
        config = self.write_text("config.yaml", mm.SMALL_CONFIG.replace(
            "  - match: 'layers\\.\\d+\\.fc\\d\\.weight'",
            "  - match: 'layers\\.\\d+\\.fc\\d\\.weight'\n    algorithm: ipq\n    iterations: 2"))
        archive = self.path("a.h5")
        self.quantize(model, config, archive, "--algo", "pg-base")
        layers = read_layers(archive)
        self.assertEqual(str(layers["embed_tokens.weight"]["algorithm"]), "pg-base")
        self.assertEqual(str(layers["layers.0.fc1.weight"]["algorithm"]), "ipq")
        self.assertLessEqual(int(layers["layers.0.fc1.weight"]["iterations"]), 2)


# --- 2. --report and --dry-run -------------------------------------------------------------

LAYER_FIELDS = ["name", "shape", "block_size", "n_centroids", "algorithm", "empty_clusters",
                "objective", "iterations", "resolution_rounds", "seconds", "original_mib",
                "compressed_mib"]
CLUSTER_FIELDS = ["empty_clusters", "objective", "iterations", "resolution_rounds", "seconds"]
TOTAL_FIELDS = ["original_mib", "compressed_mib", "ratio", "seconds"]

# fc2 gets K = 12, not a power of two: SizeTracker counts log2(12)/b fractional bits.
REPORT_CONFIG = mm.SMALL_CONFIG.replace(
    "  - match: 'layers\\.\\d+\\.fc\\d\\.weight'",
    "  - match: 'layers\\.0\\.fc2\\.weight'\n    n_centroids: 12\n"
    "  - match: 'layers\\.\\d+\\.fc\\d\\.weight'")


class TestReport(CliTest):
    def setUp(self):
        super().setUp()
        self.tensors = mm.small_model("BF16")
        self.model = self.path("model.safetensors")
        mm.write_safetensors(self.model, self.tensors)
        self.config = self.write_text("config.yaml", REPORT_CONFIG)

    def check_report(self, report, dry_run):
        with open(report) as f:
            doc = json.load(f)
        self.assertEqual(doc["dry_run"], dry_run)
        layers = {l["name"]: l for l in doc["layers"]}
        self.assertEqual(sorted(layers), mm.SMALL_QUANTIZED)
        shapes = {t.name: t.shape for t in self.tensors}
        for name, l in layers.items():
            for field in LAYER_FIELDS:
                self.assertIn(field, l, f"{name}: field {field} missing")
            self.assertEqual(l["shape"], shapes[name])
            self.assertEqual(l["algorithm"], "pg")
            for field in CLUSTER_FIELDS:
                if dry_run:
                    self.assertIsNone(l[field], f"{name}.{field} in a dry run")
                else:
                    self.assertIsInstance(l[field], (int, float), f"{name}.{field}")
            numel = shapes[name][0] * shapes[name][1]
            self.assertAlmostEqual(l["original_mib"], 4 * numel / MIB, places=12)
            self.assertAlmostEqual(
                l["compressed_mib"],
                size_tracker_bytes(numel, l["block_size"], l["n_centroids"]) / MIB, places=12)
        if not dry_run:
            self.assertEqual(layers["layers.0.fc1.weight"]["iterations"], 3)
        fc2 = layers["layers.0.fc2.weight"]
        self.assertEqual((fc2["block_size"], fc2["n_centroids"]), (4, 12))
        # log2(12)/4 bits * 2048 weights / 8 + 12*4*2 bytes of fp16 centroids.
        self.assertAlmostEqual(fc2["compressed_mib"] * MIB,
                               math.log2(12) / 4 * 2048 / 8 + 96, places=6)
        totals = doc["totals"]
        for field in TOTAL_FIELDS:
            self.assertIn(field, totals)
        params = sum(int(np.prod(t.shape)) for t in self.tensors if t.dtype != "I64")
        self.assertAlmostEqual(totals["original_mib"], 4 * params / MIB, places=9)
        kept = sum(int(np.prod(t.shape)) for t in self.tensors
                   if t.dtype != "I64" and t.name not in layers)
        self.assertAlmostEqual(
            totals["compressed_mib"],
            4 * kept / MIB + sum(l["compressed_mib"] for l in layers.values()), places=9)
        self.assertAlmostEqual(totals["ratio"], totals["original_mib"] / totals["compressed_mib"],
                               places=9)
        if dry_run:
            self.assertIsNone(totals["seconds"])
        else:
            self.assertGreater(totals["seconds"], 0)
        return doc

    def test_report(self):
        archive, report = self.path("a.h5"), self.path("report.json")
        self.quantize(self.model, self.config, archive, "--report", report)
        self.assertEqual(temporaries(report), [])
        doc = self.check_report(report, dry_run=False)
        archive_layers = read_layers(archive)
        for l in doc["layers"]:
            a = archive_layers[l["name"]]
            self.assertEqual(l["empty_clusters"], int(a["empty_clusters"]))
            self.assertEqual(l["iterations"], int(a["iterations"]))
            self.assertAlmostEqual(l["objective"], float(a["objective"]))

    def test_dry_run(self):
        archive, report = self.path("a.h5"), self.path("report.json")
        r = self.pgkm("quantize", self.model, "--config", self.config, "--out", archive,
                      "--report", report, "--dry-run")
        self.assert_ok(r)
        self.assertIn("dry run: 3 layers to quantize", r.stdout)
        self.assertEqual(len(re.findall(r"(?m)^\[\d/3\] ", r.stdout)), 3, r.stdout)
        self.assertEqual(sorted(os.listdir(self.tmp)),
                         ["config.yaml", "model.safetensors", "report.json"])
        self.check_report(report, dry_run=True)

    def test_dry_run_without_out(self):
        r = self.pgkm("quantize", self.model, "--config", self.config, "--dry-run")
        self.assert_ok(r)
        self.assertIn("dry run: 3 layers to quantize", r.stdout)

    def test_dry_run_reads_no_tensor_data(self):
        # A valid header whose data for a selected layer are NaN: only reading the data
        # could notice.
        bad = []
        for t in self.tensors:
            if t.name == "layers.0.fc2.weight":
                t = mm.Tensor(t.name, t.dtype, t.shape, b"\xc0\x7f" * (len(t.data) // 2))
            bad.append(t)
        mm.write_safetensors(self.model, bad)
        report = self.path("report.json")
        r = self.pgkm("quantize", self.model, "--config", self.config, "--out", "a.h5",
                      "--dry-run", "--report", report)
        self.assert_ok(r)
        self.check_report(report, dry_run=True)
        os.remove(report)
        r = self.pgkm("quantize", self.model, "--config", self.config, "--out", "a.h5",
                      "--report", report, "--iters", 3)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"(?m)^pgkm: error: .*layers\.0\.fc2\.weight.* nan")
        for p in ("a.h5", "a.h5.tmp", "report.json"):
            self.assertFalse(os.path.exists(self.path(p)), p)


# --- 3. determinism ------------------------------------------------------------------------


class TestDeterminism(CliTest):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(7)
        tensors = [mm.Tensor(f"layers.{i}.fc.weight", "F32", [256, 128],
                             mm.encode(mm.weight(rng, [256, 128]), "F32")) for i in range(2)]
        tensors += mm.small_model("F32")
        self.model = self.path("model.safetensors")
        mm.write_safetensors(self.model, tensors)
        self.config = self.write_text("config.yaml", mm.SMALL_CONFIG.replace(
            "fc\\d\\.weight'", "fc\\d?\\.weight'").replace("n_centroids: 16", "n_centroids: 64"))

    def test_same_command_twice(self):
        for algo in ("pg", "pg-base", "ipq"):
            with self.subTest(algo=algo):
                a, b = self.path(f"{algo}-1.h5"), self.path(f"{algo}-2.h5")
                self.quantize(self.model, self.config, a, "--algo", algo, "--seed", 5, iters=5)
                self.quantize(self.model, self.config, b, "--algo", algo, "--seed", 5, iters=5)
                self.assertEqual(len(read_layers(a)), 5)
                self.assert_same_layers(a, b)

    def test_threads_1_vs_2(self):
        for algo in ("pg", "ipq"):
            with self.subTest(algo=algo):
                a, b = self.path(f"{algo}-t1.h5"), self.path(f"{algo}-t2.h5")
                self.quantize(self.model, self.config, a, "--algo", algo, "--threads", 1,
                              iters=5)
                self.quantize(self.model, self.config, b, "--algo", algo, "--threads", 2,
                              iters=5)
                self.assert_same_layers(a, b)

    def test_search_brute_vs_pruned(self):
        # The pruned search is exact: whole archives (every dataset and attribute but
        # times) and reports (but times and the fraction of centroids scored) must match.
        for algo in ("pg", "pg-base", "ipq"):
            with self.subTest(algo=algo):
                out = {}
                for search in ("brute", "pruned"):
                    out[search] = (self.path(f"{algo}-{search}.h5"),
                                   self.path(f"{algo}-{search}.json"))
                    self.quantize(self.model, self.config, out[search][0], "--algo", algo,
                                  "--search", search, "--report", out[search][1], iters=6)
                r = subprocess.run([sys.executable, COMPARE_OUTPUTS, "--archives",
                                    out["brute"][0], out["pruned"][0]],
                                   capture_output=True, text=True, timeout=120)
                self.assertEqual(r.returncode, 0, f"archives differ:\n{r.stdout}\n{r.stderr}")
                reports = []
                for search in ("brute", "pruned"):
                    with open(out[search][1]) as f:
                        reports.append(drop_keys(json.load(f), ("scored_fraction",)))
                self.assertEqual(strip_times(reports[0]), strip_times(reports[1]))
                with open(out["pruned"][1]) as f:
                    layers = json.load(f)["layers"]
                self.assertTrue(any(layer["scored_fraction"] < 1.0 for layer in layers),
                                "the pruned search scored every centroid of every layer")

    def test_seed_changes_result(self):
        a, b = self.path("s0.h5"), self.path("s1.h5")
        # ipq draws its initial centroids at random; pg's initialisation is deterministic.
        self.quantize(self.model, self.config, a, "--algo", "ipq", "--seed", 0)
        self.quantize(self.model, self.config, b, "--algo", "ipq", "--seed", 1)
        la, lb = read_layers(a), read_layers(b)
        self.assertTrue(any(not np.array_equal(la[n]["codes"], lb[n]["codes"]) for n in la))


# --- 4. resume -----------------------------------------------------------------------------

RESUME_ARGS = ["--iters", 30, "--threads", 1]


class TestResume(CliTest):
    def setUp(self):
        super().setUp()
        self.model = self.path("model.safetensors")
        mm.write_safetensors(self.model, mm.big_model(n_layers=8, rows=1024, cols=512))
        self.config = self.write_text("config.yaml", mm.BIG_CONFIG)

    def killed_run(self, archive, *extra):
        """Starts quantize, SIGKILLs it once the first layer line is printed."""
        proc = subprocess.Popen([PGKM, "quantize", self.model, "--config", self.config,
                                 "--out", archive, *map(str, RESUME_ARGS), *map(str, extra)],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                cwd=self.tmp)
        try:
            first = proc.stdout.readline()
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.stdout.close()
            proc.wait(timeout=60)
        self.assertEqual(proc.returncode, -signal.SIGKILL, "run ended before it was killed")
        self.assertRegex(first, r"^\[1/8\] layers\.0\.fc\.weight ")
        self.assertFalse(os.path.exists(archive), "killed run left a final archive")
        parts = [p for p in os.listdir(archive + ".parts") if p.endswith(".h5")]
        self.assertGreaterEqual(len(parts), 1)
        self.assertLess(len(parts), 8)
        return parts

    def test_resume_after_kill(self):
        archive = self.path("a.h5")
        self.killed_run(archive)
        r = self.pgkm("quantize", self.model, "--config", self.config, "--out", archive,
                      "--resume", *RESUME_ARGS)
        self.assert_ok(r)
        layer_lines = [l for l in r.stdout.splitlines() if l.startswith("[")]
        self.assertEqual(len(layer_lines), 8)
        self.assertTrue(layer_lines[0].endswith("(resumed)"), layer_lines[0])
        self.assertFalse(layer_lines[-1].endswith("(resumed)"), layer_lines[-1])
        self.assertFalse(os.path.exists(archive + ".parts"))
        self.assertEqual(temporaries(archive), [])
        self.assert_schema(archive)
        fresh = self.path("fresh.h5")
        self.quantize(self.model, self.config, fresh, *RESUME_ARGS[2:], iters=RESUME_ARGS[1])
        self.assert_same_layers(archive, fresh)

    def test_resume_with_other_settings_redoes_layers(self):
        archive = self.path("a.h5")
        self.killed_run(archive)
        r = self.pgkm("quantize", self.model, "--config", self.config, "--out", archive,
                      "--resume", "--seed", 3, *RESUME_ARGS)
        self.assert_ok(r)
        self.assertNotIn("(resumed)", r.stdout)
        fresh = self.path("fresh.h5")
        self.quantize(self.model, self.config, fresh, "--seed", 3, *RESUME_ARGS[2:],
                      iters=RESUME_ARGS[1])
        self.assert_same_layers(archive, fresh)

    def test_resume_with_truncated_part(self):
        archive = self.path("a.h5")
        parts = sorted(self.killed_run(archive))
        victim = os.path.join(archive + ".parts", parts[0])
        size = os.path.getsize(victim)
        with open(victim, "r+b") as f:
            f.truncate(size // 2)
        r = self.pgkm("quantize", self.model, "--config", self.config, "--out", archive,
                      "--resume", *RESUME_ARGS)
        self.assert_ok(r)
        self.assertIn("pgkm: warning:", r.stderr)
        self.assertNotIn("pgkm: error:", r.stderr)
        first = [l for l in r.stdout.splitlines() if l.startswith("[1/8]")][0]
        self.assertFalse(first.endswith("(resumed)"), first)
        fresh = self.path("fresh.h5")
        self.quantize(self.model, self.config, fresh, *RESUME_ARGS[2:], iters=RESUME_ARGS[1])
        self.assert_same_layers(archive, fresh)

    def test_without_resume_parts_are_ignored(self):
        archive = self.path("a.h5")
        self.killed_run(archive)
        r = self.pgkm("quantize", self.model, "--config", self.config, "--out", archive,
                      *RESUME_ARGS)
        self.assert_ok(r)
        self.assertNotIn("(resumed)", r.stdout)
        self.assertFalse(os.path.exists(archive + ".parts"))


# --- 4b. model folders, AQLM export, sizes on disk ---------------------------------------


if __name__ == "__main__":
    if not os.access(PGKM, os.X_OK):
        print(f"pgkm binary not found: {PGKM} (set PGKM_BIN)", file=sys.stderr)
        sys.exit(1)
    unittest.main()
