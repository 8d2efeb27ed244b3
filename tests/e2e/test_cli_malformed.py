#!/usr/bin/env python3
"""End-to-end tests of the `pgkm` command line: malformed input of every kind: each
case fails with a message naming the file and the value, and leaves nothing behind.

Environment and requirements: tests/e2e/cli_common.py.

    python3 tests/e2e/test_cli_malformed.py -v                  # everything
    python3 tests/e2e/test_cli_malformed.py -v TestMalformed    # one class (unittest's own syntax)
"""
import json
import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_common import (  # noqa: E402
    h5py, np, mm, part_file_name, read_codes, run_pgkm, CliTest, PGKM)


OUT = "out.h5"
REPORT = "report.json"
RECON = "recon.safetensors"


def _small(tmp, dtype="F32", tensors=None, name="model.safetensors"):
    mm.write_safetensors(os.path.join(tmp, name), tensors or mm.small_model(dtype))
    return name


def _config(tmp, text=mm.SMALL_CONFIG, name="config.yaml"):
    with open(os.path.join(tmp, name), "w") as f:
        f.write(text)
    return name


def _quantize_args(model, config="config.yaml", *extra):
    return ["quantize", model, "--config", config, "--out", OUT, "--report", REPORT,
            "--iters", "3", *extra]


def _q(tmp, model_fn, config_text=mm.SMALL_CONFIG, extra=(), **kw):
    """A quantize run of a model written by model_fn(tmp) (returns its path)."""
    model = model_fn(tmp)
    _config(tmp, config_text)
    return dict(args=_quantize_args(model, "config.yaml", *extra), **kw)


def _raw(header, data=b"", pad=True):
    def write(tmp):
        mm.write_raw(os.path.join(tmp, "model.safetensors"), header, data, pad)
        return "model.safetensors"
    return write


def _bytes(blob, name="model.safetensors"):
    def write(tmp):
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(blob)
        return name
    return write


F32_64x32 = {"dtype": "F32", "shape": [64, 32], "data_offsets": [0, 8192]}
ZEROS_8K = bytes(8192)
FC_CONFIG = "pgkm: 1\ndefaults:\n  block_size: 4\n  n_centroids: 16\nrules:\n  - match: 'w.*'\n"


def _sharded_with(tmp, edit):
    d = mm.write_sharded(os.path.join(tmp, "model"), mm.small_model("F32"))
    index = os.path.join(d, "model.safetensors.index.json")
    with open(index) as f:
        doc = json.load(f)
    edit(doc)
    with open(index, "w") as f:
        json.dump(doc, f)
    return "model"


def _with_values(dtype, name, index, value):
    def write(tmp):
        tensors = []
        for t in mm.small_model(dtype):
            if t.name == name:
                v = mm.decode(t.data, t.dtype, t.shape).astype(np.float32).copy()
                v.reshape(-1)[index] = value
                t = mm.Tensor(t.name, t.dtype, t.shape, mm.encode(v, dtype))
            tensors.append(t)
        return _small(tmp, tensors=tensors)
    return write


def _archive(tmp, edit=None, name="archive.h5"):
    """A real archive of the small model, then edit(h5py.File) applied to it."""
    _small(tmp, "F32")
    _config(tmp)
    path = os.path.join(tmp, name)
    r = run_pgkm("quantize", "model.safetensors", "--config", "config.yaml", "--out", name,
                 "--iters", "2", cwd=tmp)
    assert r.returncode == 0, r.stderr
    if edit:
        with h5py.File(path, "r+") as f:
            edit(f)
    return name


def _recon(archive_name):
    return ["reconstruct", archive_name, "--out", RECON]


def _set_code(f):
    # K = 16 packs codes at 4 bits, which cannot exceed 15: rewrite the layer as schema
    # v1 (one uint8 per code), where a code of 200 can be stored.
    g = f["layers"]["layers.0.fc1.weight"]
    codes = read_codes(f, g).astype(np.uint8)
    codes[5] = 200
    del g["codes"]
    g["codes"] = codes
    g["counts"] = np.full(16, 2, np.uint32)  # the codes are what is wrong
    f.attrs.modify("format_version", np.int64(1))
    for name in f["layers"]:
        if name != "layers.0.fc1.weight":
            del f["layers"][name]


def _del_complete(f):
    del f["layers"]["layers.0.fc2.weight"].attrs["complete"]


def _wrong_format(tmp):
    with h5py.File(os.path.join(tmp, "archive.h5"), "w") as f:
        f.attrs["format"] = "not-pgkm"
        f.attrs["format_version"] = np.int64(1)
        f.create_group("layers")
        f.create_group("tensors")
    return "archive.h5"


def _garbage_part(tmp):
    os.makedirs(os.path.join(tmp, OUT + ".parts"))
    with open(os.path.join(tmp, OUT + ".parts", part_file_name("layers.0.fc1.weight")), "wb") as f:
        f.write(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    return _small(tmp)


CASES = {
    # --- safetensors headers
    "st_file_too_short": lambda t: _q(t, _bytes(b"\x10\x00\x00"),
                                      phrases=["model.safetensors", "3 bytes", "shorter"]),
    "st_header_length_beyond_file": lambda t: _q(
        t, _bytes(struct.pack("<Q", 4096) + b'{"a":1}'), phrases=["model.safetensors", "header length 4096", "exceeds"]),
    "st_header_not_json": lambda t: _q(t, _raw("{not json at all"),
                                       phrases=["model.safetensors", "not valid JSON"]),
    "st_duplicate_tensor": lambda t: _q(t, _raw(
        '{"w":{"dtype":"F32","shape":[64,32],"data_offsets":[0,8192]},'
        '"w":{"dtype":"F32","shape":[64,32],"data_offsets":[8192,16384]}}',
        bytes(16384)), FC_CONFIG, phrases=["model.safetensors", "duplicate", "'w'"]),
    "st_unknown_dtype": lambda t: _q(t, _raw(
        {"w": {"dtype": "F33", "shape": [64, 32], "data_offsets": [0, 8192]}}, ZEROS_8K),
        FC_CONFIG, phrases=["model.safetensors", "'w'", "F33"]),
    "st_offsets_beyond_data": lambda t: _q(t, _raw(
        {"w": {"dtype": "F32", "shape": [64, 32], "data_offsets": [0, 8192]}}, bytes(4000)),
        FC_CONFIG, phrases=["model.safetensors", "'w'", "8192", "beyond"]),
    "st_size_mismatch_shape": lambda t: _q(t, _raw(
        {"w": {"dtype": "F32", "shape": [64, 32], "data_offsets": [0, 8000]}}, bytes(8000)),
        FC_CONFIG, phrases=["model.safetensors", "'w'", "8000", "8192"]),
    "st_overlapping_tensors": lambda t: _q(t, _raw(
        {"w1": F32_64x32, "w2": {"dtype": "F32", "shape": [64, 32],
                                 "data_offsets": [4096, 12288]}}, bytes(12288)),
        FC_CONFIG, phrases=["model.safetensors", "'w1'", "'w2'", "overlap"]),
    "st_index_missing_shard": lambda t: _q(t, lambda tmp: _sharded_with(
        tmp, lambda d: d["weight_map"].update({"layers.0.fc1.weight": "model-gone.safetensors"})),
        phrases=["model.safetensors.index.json", "model-gone.safetensors", "does not exist"]),
    "st_index_shard_dotdot": lambda t: _q(t, lambda tmp: _sharded_with(
        tmp, lambda d: d["weight_map"].update(
            {"layers.0.fc1.weight": "../model-00001-of-00002.safetensors"})),
        phrases=["model.safetensors.index.json", "../model-00001", "not a plain file name"]),
    # --- configs
    "cfg_not_yaml": lambda t: _q(t, _small, "pgkm: 1\nrules: [\n  - {match: 'a'\n",
                                 phrases=["config.yaml", "line 3", "invalid YAML"]),
    "cfg_unknown_key": lambda t: _q(t, _small, mm.SMALL_CONFIG.replace(
        "    block_size: 8", "    blocksize: 8"), phrases=["config.yaml", "line 7", "unknown key 'blocksize'"]),
    "cfg_unknown_format": lambda t: _q(t, _small, "quantize:\n  - fc1\n",
                                       phrases=["config.yaml", "not a quantization config", "quantize"]),
    "cfg_block_size_not_dividing_row": lambda t: _q(t, _small, mm.SMALL_CONFIG.replace(
        "block_size: 4", "block_size: 5"),
        phrases=["config.yaml", "layers.0.fc", "block size 5"]),
    "cfg_rule_selects_bias": lambda t: _q(t, _small, mm.SMALL_CONFIG +
                                          "  - match: 'layers\\.0\\.fc1\\.bias'\n",
                                          phrases=["config.yaml", "layers.0.fc1.bias", "bias"]),
    "cfg_more_centroids_than_subvectors": lambda t: _q(t, _small, mm.SMALL_CONFIG.replace(
        "n_centroids: 16", "n_centroids: 1024"),
        phrases=["config.yaml", "embed_tokens.weight", "1024", "subvectors"]),
    "cfg_bad_algorithm": lambda t: _q(t, _small, mm.SMALL_CONFIG.replace(
        "  block_size: 4\n", "  block_size: 4\n  algorithm: kmeans++\n"),
        phrases=["config.yaml", "line 4", "'kmeans++'"]),
    "cfg_block_size_out_of_range": lambda t: _q(t, _small, mm.SMALL_CONFIG.replace(
        "block_size: 8", "block_size: 33"), phrases=["config.yaml", "block_size 33", "1..32"]),
    "cfg_invalid_regex": lambda t: _q(t, _small, mm.SMALL_CONFIG.replace(
        "'embed_tokens\\.weight'", "'embed_tokens(\\.weight'"),
        phrases=["config.yaml", "embed_tokens(", "regex"]),
    "cfg_strict_unmatched_pattern": lambda t: _q(t, _small, mm.SMALL_CONFIG +
                                                 "  - match: 'decoder\\..*'\n",
                                                 extra=["--strict"],
                                                 phrases=["config.yaml", "decoder", "matches no tensor"]),
    "cfg_missing_file": lambda t: dict(args=_quantize_args(_small(t), "nowhere.yaml"),
                                       phrases=["nowhere.yaml", "cannot open"]),
    # --- model values
    "val_nan_weight_f32": lambda t: _q(t, _with_values("F32", "layers.0.fc1.weight", 77,
                                                       np.nan),
                                       phrases=["layers.0.fc1.weight", "element 77", "nan"]),
    "val_inf_weight_f16": lambda t: _q(t, _with_values("F16", "embed_tokens.weight", 3,
                                                       np.inf),
                                       phrases=["embed_tokens.weight", "element 3", "inf"]),
    "val_bf16_neg_inf": lambda t: _q(t, _with_values("BF16", "layers.0.fc2.weight", 0,
                                                     -np.inf),
                                     phrases=["layers.0.fc2.weight", "element 0", "-inf"]),
    "model_missing": lambda t: dict(args=_quantize_args("nothing.safetensors",
                                                        _config(t)),
                                    phrases=["nothing.safetensors", "cannot open"]),
    # --- command line
    "cli_missing_config": lambda t: dict(
        args=["quantize", _small(t), "--out", OUT], rc=2, phrases=["--config"]),
    "cli_bad_centroid_dtype": lambda t: dict(
        args=_quantize_args(_small(t), _config(t), "--centroid-dtype", "f8"), rc=2,
        phrases=["--centroid-dtype", "'f8' is not one of f16|f32"]),
    "cli_bad_algo": lambda t: dict(
        args=_quantize_args(_small(t), _config(t), "--algo", "kmeans"), rc=2,
        phrases=["--algo", "'kmeans' is not one of pg|pg-base|ipq"]),
    "cli_algo_by_enum_number": lambda t: dict(
        args=_quantize_args(_small(t), _config(t), "--algo", "2"), rc=2,
        phrases=["--algo", "'2' is not one of"]),
    "cli_bad_search": lambda t: dict(
        args=_quantize_args(_small(t), _config(t), "--search", "fast"), rc=2,
        phrases=["'fast' is not one of pruned|brute"]),
    "cli_negative_iters": lambda t: dict(
        args=["quantize", _small(t), "--config", _config(t), "--out", OUT, "--report", REPORT,
              "--iters", "-1"],
        phrases=["--iters", "-1"]),
    "cli_out_directory_missing": lambda t: dict(
        args=["quantize", _small(t), "--config", _config(t), "--out", "nodir/out.h5",
              "--iters", "2"], phrases=["nodir/out.h5"]),
    # --- archives
    "ar_reconstruct_out_directory_missing": lambda t: dict(
        args=["reconstruct", _archive(t), "--out", "nodir/recon.safetensors"],
        phrases=["nodir/recon.safetensors"]),
    "ar_inspect_not_hdf5": lambda t: dict(
        args=["inspect", _bytes(b"this is not an HDF5 file\n" * 20, "archive.h5")(t)],
        phrases=["archive.h5", "not an HDF5 file"]),
    "ar_reconstruct_not_hdf5": lambda t: dict(
        args=_recon(_bytes(b"this is not an HDF5 file\n" * 20, "archive.h5")(t)),
        phrases=["archive.h5", "not an HDF5 file"]),
    "ar_inspect_missing": lambda t: dict(args=["inspect", "gone.h5"], phrases=["gone.h5", "no such file"]),
    "ar_wrong_format": lambda t: dict(args=["inspect", _wrong_format(t)],
                                      phrases=["archive.h5", "not-pgkm"]),
    "ar_reconstruct_wrong_format": lambda t: dict(args=_recon(_wrong_format(t)),
                                                  phrases=["archive.h5", "not-pgkm"]),
    "ar_newer_version": lambda t: dict(
        args=_recon(_archive(t, lambda f: f.attrs.modify("format_version", np.int64(99)))),
        phrases=["archive.h5", "format_version 99", "newer"]),
    "ar_codes_out_of_range_reconstruct": lambda t: dict(
        args=_recon(_archive(t, _set_code)),
        phrases=["archive.h5", "layers.0.fc1.weight", "200"]),
    "ar_codes_out_of_range_inspect": lambda t: dict(
        args=["inspect", _archive(t, _set_code)],
        phrases=["archive.h5", "layers.0.fc1.weight", "200"]),
    "ar_layer_missing_complete": lambda t: dict(
        args=_recon(_archive(t, _del_complete)),
        phrases=["archive.h5", "layers.0.fc2.weight", "complete"]),
    "ar_centroids_missing": lambda t: dict(
        args=_recon(_archive(t, lambda f: f["layers"]["embed_tokens.weight"].__delitem__(
            "centroids"))), phrases=["archive.h5", "embed_tokens.weight", "centroids"]),
    # --- resume with a corrupt part: not an error, the layer is redone.
    "resume_corrupt_part": lambda t: dict(
        args=_quantize_args(_garbage_part(t), _config(t), "--resume"), rc=0,
        phrases=["pgkm: warning:", "layers.0.fc1.weight", "redone"]),
}

ALWAYS_ABSENT = [OUT, REPORT, RECON]  # temporaries: checked by "created" below


def make_case(name, build):
    def test(self):
        spec = build(self.tmp)
        before = set(os.listdir(self.tmp))
        r = self.pgkm(*spec["args"])
        created = sorted(set(os.listdir(self.tmp)) - before)
        rc = spec.get("rc", 1)
        lines = r.stderr.splitlines()
        if rc == 0:
            self.assert_ok(r)
            self.assertNotIn("pgkm: error:", r.stderr)
            for phrase in spec.get("phrases", []):
                self.assertIn(phrase, r.stderr)
            self.assertNotIn("(resumed)", r.stdout)
            self.assertEqual(created, [OUT, REPORT])
            self.assert_schema(self.path(OUT))
            fresh = self.path("fresh.h5")
            self.quantize(spec["args"][1], "config.yaml", fresh)
            self.assert_same_layers(self.path(OUT), fresh)
            return
        self.assertGreater(r.returncode, 0, f"crashed by signal: {r.stderr}")
        self.assertNotIn(r.returncode, (134, 139))
        self.assertEqual(r.returncode, rc, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        if rc == 1:
            errors = [l for l in lines if l.startswith("pgkm: error: ")]
            self.assertEqual(len(errors), 1, f"expected one error line, got:\n{r.stderr}")
            others = [l for l in lines if not l.startswith(("pgkm: error: ", "pgkm: warning: "))]
            self.assertEqual(others, [], f"unexpected stderr lines:\n{r.stderr}")
            message = errors[0]
        else:  # usage errors come from the argument parser
            self.assertTrue(r.stderr.strip(), "no usage message")
            message = r.stderr
        for phrase in spec.get("phrases", []):
            self.assertIn(phrase, message)
        for p in ALWAYS_ABSENT + spec.get("outputs", []):
            self.assertFalse(os.path.exists(self.path(p)), f"{p} left behind")
        self.assertEqual(created, [], "a failed run left files behind")
    test.__name__ = f"test_{name}"
    return test


class TestMalformed(CliTest):
    def test_case_count(self):
        self.assertGreaterEqual(len(CASES), 20)


# Cases that show a known bug of pgkm, not of the test (the lead fixes and un-marks them).

for _name, _build in CASES.items():
    _test = make_case(_name, _build)
    setattr(TestMalformed, f"test_{_name}", _test)


if __name__ == "__main__":
    if not os.access(PGKM, os.X_OK):
        print(f"pgkm binary not found: {PGKM} (set PGKM_BIN)", file=sys.stderr)
        sys.exit(1)
    unittest.main()
