#!/usr/bin/env python3
"""launch/calibrate.py on a tiny BERT made here (no hub access): the statistics it writes
are the ones computed by hand, named like the model's weights; and pgkm quantize
--importance takes the file it wrote.

Exits 77 (ctest SKIP_RETURN_CODE) without torch/transformers, unless
PGKM_REQUIRE_MODEL_TESTS=1 (CI), which makes that a failure.
"""

import os
import subprocess
import sys
import tempfile
import unittest

os.environ["HF_HUB_OFFLINE"] = "1"
try:
    import torch
    import transformers
    from safetensors import safe_open
except ImportError as e:  # pragma: no cover - depends on the machine
    if os.environ.get("PGKM_REQUIRE_MODEL_TESTS") == "1":
        print(f"FAIL: the calibration test needs torch and transformers: {e}")
        sys.exit(1)
    print(f"SKIP: the calibration test needs torch and transformers: {e}")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(
    os.environ.get("PGKM_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE))))
PGKM = os.path.abspath(
    os.environ.get("PGKM_BIN", os.path.join(SOURCE_DIR, "build", "launch", "pgkm")))
sys.path.insert(0, os.path.join(SOURCE_DIR, "launch"))
import calibrate  # noqa: E402

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "away", "big", "red"]
TEXT = "the cat sat on the mat\n\na big red dog ran far away\nthe dog sat\n"


def make_model(d):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    tok = transformers.BertTokenizerFast(vocab_file=os.path.join(d, "vocab.txt"))
    tok.save_pretrained(d)
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32,
                                  max_position_embeddings=32)
    model = transformers.BertModel(cfg).eval()
    model.save_pretrained(d, safe_serialization=True)
    return model, tok


class Calibrate(unittest.TestCase):
    def test_statistics_match_a_hand_computation(self):
        with tempfile.TemporaryDirectory() as d:
            model, tok = make_model(d)
            text = os.path.join(d, "calib.txt")
            with open(text, "w") as f:
                f.write(TEXT)
            out = os.path.join(d, "imp.safetensors")
            r = subprocess.run([sys.executable, os.path.join(SOURCE_DIR, "launch", "calibrate.py"),
                                d, "--text", text, "--out", out], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            # By hand: the query's input is the embedding block's output; the intermediate's
            # input is the attention block's output; token counts from the ids.
            lines = [l for l in TEXT.splitlines() if l.strip()]
            ids = [tok(l, return_tensors="pt")["input_ids"] for l in lines]
            with torch.no_grad():
                emb = torch.cat([model.embeddings(input_ids=i)[0] for i in ids]).double()
                att = torch.cat([model.encoder.layer[0].attention(
                    model.embeddings(input_ids=i))[0][0] for i in ids]).double()
            n = sum(i.numel() for i in ids)
            counts = torch.zeros(len(WORDS) + 5, dtype=torch.float64)
            for i in ids:
                for t in i.reshape(-1).tolist():
                    counts[t] += 1
            with safe_open(out, "pt") as f:
                meta = f.metadata()
                self.assertEqual(meta["token_count"], str(n))
                self.assertEqual(meta["sequences"], "3")
                self.assertEqual(meta["pgkm_importance"], "1")
                with safe_open(os.path.join(d, "model.safetensors"), "pt") as m:
                    weights = set(m.keys())
                for name in f.keys():
                    self.assertIn(name, weights)  # named like the model file's weights
                q = f.get_tensor("encoder.layer.0.attention.self.query.weight").double()
                torch.testing.assert_close(q, (emb * emb).mean(0), rtol=1e-5, atol=1e-7)
                k = f.get_tensor("encoder.layer.0.attention.self.key.weight").double()
                torch.testing.assert_close(k, q)
                it = f.get_tensor("encoder.layer.0.intermediate.dense.weight").double()
                torch.testing.assert_close(it, (att * att).mean(0), rtol=1e-5, atol=1e-7)
                c = f.get_tensor("embeddings.word_embeddings.weight").double()
                torch.testing.assert_close(c, counts)
                # Position p is looked up once by every sequence longer than p; every
                # token has token type 0.
                pos = f.get_tensor("embeddings.position_embeddings.weight").double()
                expected = torch.zeros(32, dtype=torch.float64)
                for i in ids:
                    expected[:i.numel()] += 1
                torch.testing.assert_close(pos, expected)
                tt = f.get_tensor("embeddings.token_type_embeddings.weight").double()
                self.assertEqual(tt.tolist(), [float(n), 0.0])
                self.assertEqual(q.shape, (16,))
                self.assertEqual(f.get_tensor("encoder.layer.0.output.dense.weight").shape, (32,))
            # --max-tokens cuts the last sequence to fit.
            tensors, meta = calibrate.calibrate(d, text, max_tokens=10)
            self.assertEqual(meta["token_count"], "10")
            self.assertEqual(float(tensors["embeddings.word_embeddings.weight"].sum()), 10.0)
            # pgkm takes the file: every Linear is weighted, the embedding stays plain
            # (no --importance-token-weight).
            if os.path.exists(PGKM):
                cfg = os.path.join(d, "cfg.yaml")
                with open(cfg, "w") as f:
                    f.write("pgkm: 1\ndefaults:\n  block_size: 4\n  n_centroids: 4\nrules:\n"
                            "  - match: 'encoder\\.layer\\.0\\..*dense\\.weight|"
                            "encoder\\.layer\\.0\\.attention\\.self\\..*\\.weight'\n")
                a = os.path.join(d, "a.h5")
                r = subprocess.run([PGKM, "quantize", d, "--config", cfg, "--out", a,
                                    "--importance", out, "--threads", "1"],
                                   capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stderr)
                r = subprocess.run([PGKM, "inspect", a], capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout.count("importance-weighted: "), 6, r.stdout)

    def test_empty_text_is_an_error(self):
        with tempfile.TemporaryDirectory() as d:
            make_model(d)
            text = os.path.join(d, "empty.txt")
            with open(text, "w") as f:
                f.write("\n  \n")
            with self.assertRaisesRegex(calibrate.CalibrationError, "empty.txt: no non-empty"):
                calibrate.calibrate(d, text)


if __name__ == "__main__":
    unittest.main()
