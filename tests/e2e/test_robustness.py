#!/usr/bin/env python3
"""End-to-end tests of issue 14: nothing lost, nothing silently wrong.

Each test reproduces one defect of pgkm before issue 14 (the user's own files
overwritten, other people's files deleted, silent corruption on resume, crashes on a full
disk or a truncated model, hangs on special files, quietly accepted options) and checks
the behaviour now. Same environment as tests/e2e/cli_common.py (PGKM_BIN, PGKM_SOURCE_DIR).

    python3 tests/e2e/test_robustness.py -v
"""
import fcntl
import glob
import os
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cli_common import PGKM, CliTest, h5py, mm, np, read_layers  # noqa: E402
from pgkm_names import part_file_name  # noqa: E402


def leftovers(directory):
    """Temporary and lock files pgkm may leave: none is acceptable after a run ends."""
    return [p for p in glob.glob(os.path.join(directory, "**", "*"), recursive=True)
            if ".tmp" in os.path.basename(p) or p.endswith(".lock")]


class Base(CliTest):
    def small(self):
        mm.write_safetensors(self.path("model.safetensors"), mm.small_model("F32"))
        self.write_text("config.yaml", mm.SMALL_CONFIG)

    def big(self, n_layers=4, rows=512):
        mm.write_safetensors(self.path("big.safetensors"), mm.big_model(n_layers, rows, 256))
        self.write_text("big.yaml", mm.BIG_CONFIG)

    def start_big(self, out, *extra, iters=400):
        return subprocess.Popen([PGKM, "quantize", "big.safetensors", "--config", "big.yaml",
                                 "--out", out, "--iters", str(iters), "--threads", "1", *extra],
                                cwd=self.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def wait_for(self, pattern, proc, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            found = glob.glob(self.path(pattern))
            if found:
                return found
            if proc.poll() is not None:
                self.fail(f"pgkm ended before {pattern} appeared: {proc.communicate()}")
            time.sleep(0.02)
        self.fail(f"{pattern} did not appear")

    def assert_error(self, r, rc, *phrases):
        self.assertEqual(r.returncode, rc, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        errors = [l for l in r.stderr.splitlines() if l.startswith("pgkm: error: ")]
        self.assertEqual(len(errors), 1, r.stderr)
        for p in phrases:
            self.assertIn(p, errors[0])


class TestOutputs(Base):
    """Outputs never clash with inputs; a run deletes only what pgkm made."""

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def test_output_equal_to_an_input_is_a_usage_error(self):
        self.small()
        model, config = self.read("model.safetensors"), self.read("config.yaml")
        q = ["quantize", "model.safetensors", "--config", "config.yaml", "--iters", "2"]
        os.symlink("model.safetensors", self.path("link.safetensors"))
        for extra, names in [
            (["--out", "./model.safetensors"], ["./model.safetensors", "the model"]),
            (["--out", "link.safetensors"], ["link.safetensors", "the model"]),
            (["--out", "config.yaml"], ["config.yaml", "the config"]),
            (["--out", "a.h5", "--report", "model.safetensors"], ["--report", "the model"]),
            (["--out", "a.h5", "--report", "./a.h5"], ["--report", "--out"]),
        ]:
            r = self.pgkm(*q, *extra)
            self.assert_error(r, 2, "same file", *names)
        self.assertEqual(self.read("model.safetensors"), model)
        self.assertEqual(self.read("config.yaml"), config)
        self.assertFalse(os.path.exists(self.path("a.h5")))

    def test_reconstruct_and_export_out_equal_to_the_archive(self):
        self.small()
        self.quantize("model.safetensors", "config.yaml", "a.h5")
        archive = self.read("a.h5")
        for cmd in (["reconstruct", "a.h5", "--out", "./a.h5"],
                    ["export", "a.h5", "--format", "aqlm", "--out", "./a.h5"]):
            self.assert_error(self.pgkm(*cmd), 2, "same file", "the archive")
        self.assertEqual(self.read("a.h5"), archive)

    def test_foreign_files_in_parts_are_never_deleted(self):
        self.small()
        os.makedirs(self.path("a.h5.parts"))
        self.write_text("a.h5.parts/precious.txt", "mine")
        r = self.pgkm("quantize", "model.safetensors", "--config", "config.yaml", "--out", "a.h5",
                      "--iters", "2")
        self.assert_error(r, 1, "a.h5.parts/precious.txt", "not a checkpoint of pgkm")
        self.assertEqual(self.read("a.h5.parts/precious.txt"), b"mine")
        self.assertFalse(os.path.exists(self.path("a.h5")))

    def test_second_run_on_the_same_out_is_refused(self):
        self.small()
        # A run holding the output's lock, as a first pgkm run does while it works.
        with open(self.path("a.h5.lock"), "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            r = self.pgkm("quantize", "model.safetensors", "--config", "config.yaml", "--out",
                          "a.h5", "--iters", "2")
            self.assert_error(r, 1, "a.h5", "another pgkm run")
        self.assertFalse(os.path.exists(self.path("a.h5")))

    def test_two_concurrent_runs_the_first_finishes_intact(self):
        self.big(n_layers=2, rows=256)
        first = self.start_big("a.h5", iters=200)
        self.wait_for("a.h5.tmp-*", first)
        second = self.pgkm("quantize", "big.safetensors", "--config", "big.yaml", "--out", "a.h5",
                           "--iters", "2")
        self.assert_error(second, 1, "another pgkm run")
        out, err = first.communicate(timeout=600)
        self.assertEqual(first.returncode, 0, err)
        self.assert_schema(self.path("a.h5"))
        self.assertEqual(leftovers(self.tmp), [])

    def test_planted_symlink_at_temporary_names_is_not_followed(self):
        self.small()
        self.write_text("victim.txt", "precious")
        # The old predictable names, and a few random-looking ones.
        for name in ["a.h5.tmp", "a.h5.tmp-00000000", "a.h5.parts.tmp"]:
            os.symlink("victim.txt", self.path(name))
        self.quantize("model.safetensors", "config.yaml", "a.h5")
        self.assertEqual(self.read("victim.txt"), b"precious")


class TestIntegrity(Base):
    """Checksums: damage is found by --resume, reconstruct and inspect."""

    def flip_dataset_byte(self, archive, dataset):
        with h5py.File(self.path(archive), "r") as f:
            d = f[dataset]
            offset = d.id.get_offset() + d.id.get_storage_size() // 2
        with open(self.path(archive), "r+b") as f:
            f.seek(offset)
            b = f.read(1)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0x10]))

    def test_damaged_archive_is_reported(self):
        self.small()
        self.quantize("model.safetensors", "config.yaml", "a.h5")
        self.assert_ok(self.pgkm("inspect", "a.h5"))
        for dataset in ["layers/layers.0.fc1.weight/codes", "layers/embed_tokens.weight/centroids",
                        "tensors/layers.0.fc1.bias"]:
            self.quantize("model.safetensors", "config.yaml", "b.h5")
            self.flip_dataset_byte("b.h5", dataset)
            name = dataset.split("/")[1]
            for cmd in (["inspect", "b.h5"], ["reconstruct", "b.h5", "--out", "r.safetensors"]):
                self.assert_error(self.pgkm(*cmd), 1, "b.h5", name, "checksum mismatch")
            self.assertFalse(os.path.exists(self.path("r.safetensors")))

    def test_verify_lists_every_damaged_object(self):
        self.small()
        self.quantize("model.safetensors", "config.yaml", "a.h5")
        r = self.pgkm("inspect", "a.h5", "--verify")
        self.assert_ok(r)
        with h5py.File(self.path("a.h5"), "r") as f:
            objects = (len(f["layers"]) + len(f["tensors"]) + 1 + len(f["source"]["files"]))
        self.assertEqual(r.stdout.strip().splitlines(), [f"a.h5: verified {objects} objects"])
        # Damage in two different layers: both are named, and the check goes on past the
        # first (plain inspect stops at it).
        damaged = ["layers.0.fc1.weight", "embed_tokens.weight"]
        self.flip_dataset_byte("a.h5", f"layers/{damaged[0]}/codes")
        self.flip_dataset_byte("a.h5", f"layers/{damaged[1]}/centroids")
        r = self.pgkm("inspect", "a.h5", "--verify")
        self.assert_error(r, 1, "a.h5", f"2 of {objects} objects damaged")
        listed = [l for l in r.stdout.splitlines() if l.startswith("damaged: ")]
        self.assertEqual(len(listed), 2, r.stdout)
        for name, line in zip(damaged, sorted(listed, key=lambda l: damaged[0] not in l)):
            self.assertIn(f"layer '{name}'", line)
            self.assertIn("checksum mismatch", line)
        self.assert_error(self.pgkm("inspect", "a.h5"), 1, "checksum mismatch")

    def test_verify_checks_kept_tensors_and_source_files(self):
        os.makedirs(self.path("m"))
        mm.write_safetensors(self.path("m/model.safetensors"), mm.small_model("F32"))
        self.write_text("m/config.json", '{"model_type": "test"}\n')
        self.write_text("config.yaml", mm.SMALL_CONFIG)
        self.quantize("m", "config.yaml", "a.h5")
        with h5py.File(self.path("a.h5"), "r") as f:
            source_file = next(iter(f["source"]["files"]))
        self.flip_dataset_byte("a.h5", "tensors/layers.0.fc1.bias")
        self.flip_dataset_byte("a.h5", f"source/files/{source_file}")
        r = self.pgkm("inspect", "a.h5", "--verify")
        self.assert_error(r, 1, "objects damaged")
        listed = [l for l in r.stdout.splitlines() if l.startswith("damaged: ")]
        self.assertEqual(len(listed), 2, r.stdout)
        self.assertIn("tensor 'layers.0.fc1.bias'", listed[0])
        self.assertIn(f"source file '{source_file}'", listed[1])

    def test_corrupt_part_is_redone_on_resume(self):
        self.big(n_layers=3, rows=256)
        proc = self.start_big("a.h5", iters=60)
        part = self.wait_for("a.h5.parts/*.h5", proc)[0]
        proc.kill()
        proc.communicate()
        name = os.path.basename(part)
        tensor = next(t.name for t in mm.big_model(3, 256, 256) if part_file_name(t.name) == name)
        # A byte in the middle of the layer's data (its codes), as a bad disk would flip it.
        with h5py.File(part, "r") as f:
            d = f["layers"][tensor]["codes"]
            offset = d.id.get_offset() + d.id.get_storage_size() // 2
        with open(part, "r+b") as f:
            f.seek(offset)
            b = f.read(1)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0xff]))
        r = self.pgkm("quantize", "big.safetensors", "--config", "big.yaml", "--out", "a.h5",
                      "--iters", "60", "--threads", "1", "--resume")
        self.assert_ok(r)
        self.assertIn(f"layer '{tensor}'", r.stderr)
        self.assertIn("checksum mismatch", r.stderr)
        self.assertIn("redone", r.stderr)
        r = self.pgkm("quantize", "big.safetensors", "--config", "big.yaml", "--out", "fresh.h5",
                      "--iters", "60", "--threads", "1")
        self.assert_ok(r)
        self.assert_same_layers(self.path("a.h5"), self.path("fresh.h5"))


class TestFailures(Base):
    """Full disks, truncated models and signals end cleanly."""

    def test_full_disk_is_one_clear_line(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a small tmpfs needs root")
        self.small()
        fs = self.path("fs")
        os.makedirs(fs)
        seen_parts = False
        for size in ["4k", "16k", "24k", "40k"]:
            if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", fs],
                              capture_output=True).returncode != 0:
                self.skipTest("cannot mount a tmpfs here")
            try:
                r = self.pgkm("quantize", "model.safetensors", "--config", "config.yaml",
                              "--out", "fs/a.h5", "--iters", "2")
                self.assert_error(r, 1, "fs/a.h5", "no space left on device")
                self.assertNotIn("buf = 0x", r.stderr)  # HDF5's raw dump stays out
                self.assertFalse(os.path.exists(os.path.join(fs, "a.h5")))
                self.assertEqual(leftovers(fs), [])
                parts = glob.glob(os.path.join(fs, "a.h5.parts", "*.h5"))
                seen_parts = seen_parts or bool(parts)
                for p in parts:  # finished checkpoints are kept, and whole
                    with h5py.File(p, "r") as f:
                        self.assertEqual(f.attrs["format"], "pgkm-layer-part")
            finally:
                subprocess.run(["umount", fs], check=True)
        self.assertTrue(seen_parts, "no size left a finished checkpoint behind")

    def test_hdf5_error_stack_only_with_verbose(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a small tmpfs needs root")
        self.small()
        fs = self.path("fs")
        os.makedirs(fs)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", fs],
                          capture_output=True).returncode != 0:
            self.skipTest("cannot mount a tmpfs here")
        try:
            args = ["quantize", "model.safetensors", "--config", "config.yaml",
                    "--out", "fs/a.h5", "--iters", "2"]
            r = self.pgkm(*args)
            self.assert_error(r, 1, "fs/a.h5", "no space left on device")
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertNotIn("HDF5-DIAG", r.stderr)
            for verbose in (["--verbose", *args], [*args, "--verbose"]):
                r = self.pgkm(*verbose)
                self.assert_error(r, 1, "fs/a.h5", "no space left on device")
                self.assertIn("HDF5-DIAG: Error detected in HDF5", r.stderr)
                self.assertIn("No space left on device", r.stderr)  # the stack's own text
        finally:
            subprocess.run(["umount", fs], check=True)

    def test_sigint_removes_the_temporary_archive_and_keeps_checkpoints(self):
        self.big(n_layers=4, rows=256)
        proc = self.start_big("a.h5", iters=100)
        self.wait_for("a.h5.parts/*.h5", proc)
        self.wait_for("a.h5.tmp-*", proc)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, -signal.SIGINT, err)
        self.assertIn("interrupted", err)
        self.assertEqual(glob.glob(self.path("a.h5.tmp*")), [])
        self.assertFalse(os.path.exists(self.path("a.h5")))
        self.assertTrue(glob.glob(self.path("a.h5.parts", "*.h5")))

    def test_model_truncated_mid_run_is_an_error_not_sigbus(self):
        self.big(n_layers=4, rows=512)
        proc = self.start_big("a.h5", iters=30)
        self.wait_for("a.h5.tmp-*", proc)
        os.truncate(self.path("big.safetensors"), 4096)
        out, err = proc.communicate(timeout=300)
        self.assertEqual(proc.returncode, 1, err)
        self.assertIn("big.safetensors", err)
        self.assertIn("shrank", err)
        self.assertFalse(os.path.exists(self.path("a.h5")))
        self.assertEqual(glob.glob(self.path("a.h5.tmp*")), [])


class TestInputs(Base):
    """Special files, hostile configs, options and names."""

    def q(self, *extra, model="model.safetensors", config="config.yaml"):
        return self.pgkm("quantize", model, "--config", config, "--out", "a.h5", "--iters", "2",
                         *extra, timeout=60)

    def test_special_files_are_refused_at_once(self):
        self.small()
        os.mkfifo(self.path("fifo"))
        os.makedirs(self.path("dir"))
        self.assert_error(self.q(model="fifo"), 1, "fifo", "FIFO")
        self.assert_error(self.q(config="fifo"), 1, "fifo", "FIFO")
        self.assert_error(self.q(config="/dev/zero"), 1, "/dev/zero", "character device")
        self.assert_error(self.q(config="dir"), 1, "dir", "directory")
        # A FIFO as a shard of an indexed model.
        d = mm.write_sharded(self.path("sharded"), mm.small_model("F32"))
        shard = sorted(glob.glob(os.path.join(d, "model-*.safetensors")))[0]
        os.remove(shard)
        os.mkfifo(shard)
        self.assert_error(self.q(model="sharded"), 1, os.path.basename(shard), "FIFO")

    def test_pathological_patterns_are_refused(self):
        self.small()
        for pattern, phrase in [("(" * 20000 + "a" + ")" * 20000, "bytes long"),
                                ("(" * 100 + "a" + ")" * 100, "deep"),
                                ("[a]" * 2000, "bytes long")]:
            self.write_text("bad.yaml", mm.SMALL_CONFIG + f"  - match: '{pattern}'\n")
            self.assert_error(self.q(config="bad.yaml"), 1, "bad.yaml", "refused", phrase)

    def test_two_documents_and_invalid_utf8_are_errors(self):
        self.small()
        self.write_text("two.yaml", mm.SMALL_CONFIG + "---\npgkm: 1\n")
        self.assert_error(self.q(config="two.yaml"), 1, "two.yaml", "2 YAML documents")
        with open(self.path("utf.yaml"), "wb") as f:
            f.write(mm.SMALL_CONFIG.encode() + b"  - match: 'layers\\.0\\.fc1\xff'\n")
        self.assert_error(self.q(config="utf.yaml"), 1, "utf.yaml", "not valid UTF-8")

    def test_options_out_of_range_are_refused(self):
        self.small()
        for extra, rc, phrase in [(["--seed", "-1"], 2, "--seed"),
                                  (["--seed", "18446744073709551616"], 2, "--seed"),
                                  (["--threads", "100000"], 1, "--threads"),
                                  (["--threads", "20000"], 1, "--threads"),
                                  (["--shard-threshold", "nan"], 1, "--shard-threshold")]:
            r = self.q(*extra)
            self.assertEqual(r.returncode, rc, f"{extra}: {r.stderr}")
            self.assertIn(phrase, r.stderr)
        self.assert_ok(self.q("--seed", "18446744073709551615"))

    def test_long_names_work_and_names_colliding_after_nul_are_refused(self):
        rng = np.random.default_rng(0)
        long_name = "encoder." + "x" * 300 + ".weight"
        w = mm.encode(mm.weight(rng, [64, 32]), "F32")
        mm.write_safetensors(self.path("long.safetensors"),
                             [mm.Tensor(long_name, "F32", [64, 32], w)])
        self.write_text("c.yaml", "pgkm: 1\ndefaults:\n  block_size: 4\n  n_centroids: 16\n"
                                  "rules:\n  - match: 'encoder\\..*'\n")
        self.assert_ok(self.q("--resume", model="long.safetensors", config="c.yaml"))
        self.assertEqual(list(read_layers(self.path("a.h5"))), [long_name])
        os.remove(self.path("a.h5"))
        mm.write_safetensors(self.path("nul.safetensors"),
                             [mm.Tensor("encoder.a\0x", "F32", [64, 32], w),
                              mm.Tensor("encoder.a\0y", "F32", [64, 32], w)])
        self.assert_error(self.q(model="nul.safetensors", config="c.yaml"), 1,
                          "encoder.a\\x00x", "encoder.a\\x00y", "same name")

    def test_weights_beyond_float16_get_float32_centroids(self):
        tensors = mm.small_model("F32")
        v = mm.decode(tensors[1].data, "F32", tensors[1].shape).copy()
        v.reshape(-1)[7] = 1.0e6
        tensors[1] = mm.Tensor(tensors[1].name, "F32", tensors[1].shape, mm.encode(v, "F32"))
        mm.write_safetensors(self.path("model.safetensors"), tensors)
        self.write_text("config.yaml", mm.SMALL_CONFIG)
        r = self.q()
        self.assert_ok(r)
        self.assertIn("layers.0.fc1.weight", r.stderr)
        self.assertIn("float32", r.stderr)
        layers = read_layers(self.path("a.h5"))
        self.assertEqual(layers["layers.0.fc1.weight"]["centroids_dtype"], np.float32)
        self.assertEqual(layers["layers.0.fc2.weight"]["centroids_dtype"], np.float16)
        self.assertTrue(np.isfinite(layers["layers.0.fc1.weight"]["centroids"]).all())
        self.assert_ok(self.pgkm("reconstruct", "a.h5", "--out", "r.safetensors"))


if __name__ == "__main__":
    unittest.main()
