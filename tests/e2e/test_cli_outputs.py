#!/usr/bin/env python3
"""End-to-end tests of the `pgkm` command line: model folders (sharded Hugging Face
checkpoints in and out), the AQLM export and the sizes on disk.

Environment and requirements: tests/e2e/cli_common.py.

    python3 tests/e2e/test_cli_outputs.py -v                  # everything
    python3 tests/e2e/test_cli_outputs.py -v TestModelFolder    # one class (unittest's own syntax)
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_common import (  # noqa: E402
    h5py, np, mm, MIB, read_layers, CliTest, PGKM)


EXTRA_FILES = {
    "config.json": b'{\n  "model_type": "bert",\n  "hidden_size": 16\n}\n',
    "tokenizer.json": b'{"version": "1.0"}',
    "vocab.txt": b"[PAD]\n[UNK]\nhello\n",
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
    "README.md": b"# a model\n",
}
SKIPPED_FILES = {".gitattributes": b"*.bin filter=lfs", ".git/HEAD": b"ref: main",
                 "pytorch_model.bin": b"\0" * 64, "onnx/model.onnx": b"\0" * 32}


def write_folder_model(directory, tensors, n_shards=2):
    """A Hugging Face model folder: shards with metadata and an index with metadata, the
    non-weight files of EXTRA_FILES and files pgkm must not record (SKIPPED_FILES)."""
    mm.write_sharded(directory, tensors, n_shards,
                     lambda i: {"format": "pt", "shard": str(i), "origin": "test"},
                     {"note": "kept"})
    for rel, data in {**EXTRA_FILES, **SKIPPED_FILES}.items():
        os.makedirs(os.path.dirname(os.path.join(directory, rel)), exist_ok=True)
        with open(os.path.join(directory, rel), "wb") as f:
            f.write(data)
    return directory


def folder_files(directory):
    """{relative path: bytes} of every file under directory."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            p = os.path.join(root, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, directory)] = f.read()
    return out


class TestModelFolder(CliTest):
    def setUp(self):
        super().setUp()
        self.tensors = mm.small_model("BF16")
        self.model = write_folder_model(self.path("model"), self.tensors)
        self.config = self.write_text("config.yaml", mm.SMALL_CONFIG)
        self.archive = self.path("a.h5")
        r = self.quantize(self.model, self.config, self.archive)
        self.assertIn("not recorded in the archive: pytorch_model.bin", r.stderr)
        self.assertIn("onnx/model.onnx", r.stderr)
        self.assert_schema(self.archive)

    def test_folder_like_the_source(self):
        out = self.path("out") + "/"
        r = self.pgkm("reconstruct", self.archive, "--out", out)
        self.assert_ok(r)
        self.assertIn("model folder", r.stdout)
        got = folder_files(out)
        src = folder_files(self.model)
        for rel, data in EXTRA_FILES.items():
            self.assertEqual(got.get(rel), data, rel)
        for rel in SKIPPED_FILES:
            self.assertNotIn(rel, got)
        self.assertEqual(sorted(p for p in got if p.endswith(".safetensors")),
                         sorted(p for p in src if p.endswith(".safetensors")))
        with h5py.File(self.archive, "r") as f:
            digest_layers = len(f["layers"])
        self.assertEqual(digest_layers, 3)
        src_index = json.loads(src["model.safetensors.index.json"])
        index = json.loads(got["model.safetensors.index.json"])
        self.assertEqual(index["weight_map"], src_index["weight_map"])
        self.assertEqual(index["metadata"]["note"], "kept")
        by_name = {t.name: t for t in self.tensors}
        total = 0
        for shard in sorted(p for p in got if p.endswith(".safetensors")):
            tensors, meta = mm.read_safetensors(os.path.join(out, shard))
            _, src_meta = mm.read_safetensors(os.path.join(self.model, shard))
            self.assertEqual({k: v for k, v in meta.items() if not k.startswith("pgkm_")},
                             src_meta, shard)
            self.assertRegex(meta["pgkm_archive_digest"], r"^[0-9a-f]{16}$")
            self.assertEqual(meta["pgkm_content"], "dequantized")
            self.assertNotIn(self.tmp, json.dumps(meta))  # no local path
            for name, t in tensors.items():
                self.assertEqual(src_index["weight_map"][name], shard)
                self.assertEqual((t.dtype, t.shape), (by_name[name].dtype, by_name[name].shape))
                total += len(t.data)
        self.assertEqual(index["metadata"]["total_size"], total)
        # The single file holds the same tensors, with the merged metadata and no path.
        single = self.path("single.safetensors")
        self.assert_ok(self.pgkm("reconstruct", self.archive, "--out", single))
        tensors, meta = mm.read_safetensors(single)
        self.assertEqual(meta["origin"], "test")
        self.assertNotIn("pgkm_archive", meta)
        for shard in (p for p in got if p.endswith(".safetensors")):
            part, _ = mm.read_safetensors(os.path.join(out, shard))
            for name, t in part.items():
                self.assertEqual(tensors[name].data, t.data, name)

    def test_identical_runs_give_identical_bytes(self):
        outs = []
        for i in range(2):
            out = self.path(f"out{i}")
            self.assert_ok(self.pgkm("reconstruct", self.archive, "--out", out))
            outs.append(folder_files(out))
        self.assertEqual(outs[0], outs[1])
        a, b = self.path("a.safetensors"), self.path("sub")
        os.makedirs(b)
        b = os.path.join(b, "a.safetensors")
        self.assert_ok(self.pgkm("reconstruct", self.archive, "--out", a))
        self.assert_ok(self.pgkm("reconstruct", self.archive, "--out", b))
        with open(a, "rb") as fa, open(b, "rb") as fb:
            self.assertEqual(fa.read(), fb.read())

    def test_refuses_a_folder_that_is_not_empty(self):
        out = self.path("busy")
        os.makedirs(out)
        self.write_text("busy/keep.txt", "mine")
        r = self.pgkm("reconstruct", self.archive, "--out", out)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("not empty", r.stderr)
        self.assertEqual(os.listdir(out), ["keep.txt"])
        self.assertEqual([p for p in os.listdir(self.tmp) if ".tmp" in p], [])
        os.remove(os.path.join(out, "keep.txt"))  # an empty folder is fine
        self.assert_ok(self.pgkm("reconstruct", self.archive, "--out", out))

    def test_inspect_shows_real_and_sizetracker_sizes(self):
        r = self.pgkm("inspect", self.archive)
        self.assert_ok(r)
        self.assertIn("SizeTracker", r.stdout)
        self.assertRegex(r.stdout, r"(?m)^total: 3 layers quantized, 5 tensors kept, 5 source files")
        self.assertIn("on disk", r.stdout)


AQLM_CONFIG = """\
pgkm: 1
defaults:
  block_size: 4
  n_centroids: 12
rules:
  - match: 'layers\\.\\d+\\.fc\\d\\.weight'
  - match: 'embed_tokens\\.weight'
    block_size: 8
    n_centroids: 16
"""


class TestExport(CliTest):
    def setUp(self):
        super().setUp()
        self.tensors = mm.small_model("F16")
        self.model = write_folder_model(self.path("model"), self.tensors)

    def test_aqlm_layout(self):
        config = self.write_text("config.yaml", AQLM_CONFIG)
        archive = self.path("a.h5")
        self.quantize(self.model, config, archive)
        out = self.path("aqlm")
        r = self.pgkm("export", archive, "--format", "aqlm", "--out", out)
        self.assert_ok(r)
        self.assertIn("2 Linear layers as codes (b=4, K=12, 4-bit codebook)", r.stdout)
        got = folder_files(out)
        cfg = json.loads(got["config.json"])
        self.assertEqual(cfg["model_type"], "bert")
        q = cfg["quantization_config"]
        self.assertEqual({k: q[k] for k in ("quant_method", "in_group_size", "out_group_size",
                                            "num_codebooks", "nbits_per_codebook")},
                         {"quant_method": "aqlm", "in_group_size": 4, "out_group_size": 1,
                          "num_codebooks": 1, "nbits_per_codebook": 4})
        self.assertIn("embed_tokens.weight", q["linear_weights_not_to_quantize"])
        self.assertIn("embed_tokens", q["linear_weights_not_to_quantize"])
        layers = read_layers(archive)
        tensors = {}
        for shard in (p for p in got if p.endswith(".safetensors")):
            part, meta = mm.read_safetensors(os.path.join(out, shard))
            self.assertEqual(meta["pgkm_content"], "aqlm")
            tensors.update(part)
        for name in ("layers.0.fc1", "layers.0.fc2"):
            layer = layers[name + ".weight"]
            rows, cols = [int(d) for d in layer["shape"]]
            self.assertNotIn(name + ".weight", tensors)
            codes, books, scales = (tensors[name + s] for s in (".codes", ".codebooks", ".scales"))
            self.assertEqual((codes.dtype, codes.shape), ("I8", [rows, cols // 4, 1]))
            self.assertEqual((books.dtype, books.shape), ("F16", [1, 16, 1, 4]))
            self.assertEqual((scales.dtype, scales.shape), ("F16", [rows, 1, 1, 1]))
            c = np.frombuffer(codes.data, np.int8).reshape(rows, cols // 4).astype(np.int64) % 16
            # fairseq order: subvector blk * rows + row -> codes[row, blk, 0]
            want = layer["codes"].astype(np.int64).reshape(cols // 4, rows).T
            self.assertTrue(np.array_equal(c, want), name)
            cb = np.frombuffer(books.data, np.float16).reshape(16, 4)
            self.assertTrue(np.array_equal(cb[:12], layer["centroids"].astype(np.float16)))
            self.assertTrue(np.all(cb[12:] == 0))
            self.assertTrue(np.all(np.frombuffer(scales.data, np.float16) == 1))
            self.assertEqual(tensors[name + ".bias"].data,
                             next(t.data for t in self.tensors if t.name == name + ".bias"))
        emb = tensors["embed_tokens.weight"]  # not a Linear: written dense
        self.assertEqual((emb.dtype, emb.shape), ("F16", [100, 16]))

    def test_refuses_linears_with_different_settings(self):
        config = self.write_text("config.yaml", AQLM_CONFIG.replace(
            "  - match: 'layers\\.\\d+\\.fc\\d\\.weight'\n",
            "  - match: 'layers\\.0\\.fc2\\.weight'\n    n_centroids: 16\n"
            "  - match: 'layers\\.\\d+\\.fc\\d\\.weight'\n"))
        archive = self.path("a.h5")
        self.quantize(self.model, config, archive)
        r = self.pgkm("export", archive, "--format", "aqlm", "--out", self.path("aqlm"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("one block size and one K", r.stderr)
        self.assertIn("layers.0.fc1.weight", r.stderr)
        self.assertIn("layers.0.fc2.weight", r.stderr)
        self.assertFalse(os.path.exists(self.path("aqlm")))

    def test_refuses_an_archive_without_config(self):
        model = self.path("m.safetensors")
        mm.write_safetensors(model, self.tensors)
        config = self.write_text("config.yaml", AQLM_CONFIG)
        archive = self.path("a.h5")
        self.quantize(model, config, archive)
        r = self.pgkm("export", archive, "--format", "aqlm", "--out", self.path("aqlm"))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("config.json", r.stderr)
        r = self.pgkm("export", archive, "--format", "gguf", "--out", self.path("x"))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("'gguf' is not one of aqlm", r.stderr)


SIZES_CONFIG = """\
pgkm: 1
defaults:
  block_size: 4
rules:
  - match: 'w768\\.weight'
    n_centroids: 768
  - match: 'w3072\\.weight'
    n_centroids: 3072
  - match: 'w4096\\.weight'
    n_centroids: 4096
"""


class TestSizes(CliTest):
    def test_archive_on_disk_matches_the_plan(self):
        rng = np.random.default_rng(3)
        tensors = [mm.Tensor(f"w{k}.weight", "F32", [1024, 512],
                             mm.encode(mm.weight(rng, [1024, 512]), "F32"))
                   for k in (768, 3072, 4096)]
        tensors.append(mm.Tensor("w768.bias", "F32", [1024], mm.encode(
            mm.weight(rng, [1024]), "F32")))
        model = self.path("model.safetensors")
        mm.write_safetensors(model, tensors)
        config = self.write_text("config.yaml", SIZES_CONFIG)
        archive, report = self.path("a.h5"), self.path("r.json")
        r = self.quantize(model, config, archive, "--report", report, "--algo", "pg-base",
                          iters=1)
        with open(report) as f:
            doc = json.load(f)
        on_disk = os.path.getsize(archive)
        totals = doc["totals"]
        self.assertEqual(totals["archive_file_bytes"], on_disk)
        self.assertLess(abs(on_disk - totals["archive_bytes"]) / totals["archive_bytes"], 0.05,
                        (on_disk, totals["archive_bytes"]))
        self.assertEqual(totals["source_bytes"], sum(len(t.data) for t in tensors))
        with h5py.File(archive, "r") as f:
            for l in doc["layers"]:
                k = l["n_centroids"]
                g = f["layers"][l["name"]]
                bits = int(g["codes"].attrs["bits"])
                self.assertEqual(bits, {768: 10, 3072: 12, 4096: 12}[k])
                codes = g["codes"].id.get_storage_size()
                self.assertEqual(codes, (1024 * 512 // 4 * bits + 7) // 8)
                self.assertEqual(l["archive_bytes"], codes + k * 4 * 2)
                self.assertNotIn("counts", g)
                # SizeTracker's fractional log2(K) bits differ from the packed ones by < 5%.
                self.assertLess(l["archive_bytes"] / (l["compressed_mib"] * MIB), 1.05)
        # So does the whole file, HDF5's overhead included, for a model of F32 tensors.
        self.assertLess(abs(on_disk / (totals["compressed_mib"] * MIB) - 1), 0.05)
        self.assertIn("on disk", r.stdout)
        self.assertIn("SizeTracker", r.stdout)

    def test_f16_source_counts_two_bytes(self):
        tensors = mm.small_model("F16")
        model = self.path("model.safetensors")
        mm.write_safetensors(model, tensors)
        config = self.write_text("config.yaml", mm.SMALL_CONFIG)
        report = self.path("r.json")
        r = self.pgkm("quantize", model, "--config", config, "--dry-run", "--report", report)
        self.assert_ok(r)
        self.assertIn("planned", r.stdout)
        with open(report) as f:
            doc = json.load(f)
        self.assertEqual(doc["totals"]["source_bytes"], sum(len(t.data) for t in tensors))
        self.assertIsNone(doc["totals"]["archive_file_bytes"])
        for l in doc["layers"]:
            self.assertEqual(l["source_bytes"], 2 * l["shape"][0] * l["shape"][1])


# --- 5. malformed inputs -------------------------------------------------------------------
#
# Each case is a function(tmp) -> dict(args=[...], rc=expected exit code or None for "1",
# phrases=[...] every one of which must be in the error line, outputs=[...] paths that must
# not exist afterwards). The default outputs are those of the standard command.


if __name__ == "__main__":
    if not os.access(PGKM, os.X_OK):
        print(f"pgkm binary not found: {PGKM} (set PGKM_BIN)", file=sys.stderr)
        sys.exit(1)
    unittest.main()
