#!/usr/bin/env python3
"""launch/calibrate.py on a tiny BERT made here (no hub): its statistics against ones
computed another way, its metadata, and clear errors for bad input.

The check is independent of the tool's hooks: the input of layer i's query, key and value
is the model's hidden state i (output_hidden_states), the input of the pooler is the
first token of the last hidden state, and token frequencies are counted from the
tokenizer's own ids. Skipped (exit 77) without torch and transformers unless
PGKM_REQUIRE_MODEL_TESTS=1.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import unittest

os.environ["HF_HUB_OFFLINE"] = "1"
try:
    import numpy as np
    import torch
    from safetensors import safe_open
    from transformers import BertConfig, BertModel, BertTokenizerFast
except ImportError as e:  # pragma: no cover - depends on the machine
    if os.environ.get("PGKM_REQUIRE_MODEL_TESTS") == "1":
        print(f"FAIL: the calibration test needs torch and transformers: {e}")
        sys.exit(1)
    print(f"SKIP: the calibration test needs torch and transformers: {e}")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.abspath(os.environ.get("PGKM_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE))))
CALIBRATE = os.path.join(SOURCE_DIR, "launch", "calibrate.py")
WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far", "away", "home", "and"]
TEXT = "the cat sat on the mat\n\na dog ran far away\nthe dog and the cat ran home\n"


def make_tiny_model(folder):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=os.path.join(folder, "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=24,
                        max_position_embeddings=32)
    BertModel(config).eval().save_pretrained(folder)


class Calibrate(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.model = os.path.join(self.tmp.name, "tiny")
        os.mkdir(self.model)
        make_tiny_model(self.model)
        self.text = self.path("text.txt")
        with open(self.text, "w") as f:
            f.write(TEXT)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def calibrate(self, *args):
        return subprocess.run([sys.executable, CALIBRATE, *map(str, args)],
                              capture_output=True, text=True, timeout=300)

    def expected(self, max_tokens=None):
        """(per weight name: statistic, tokens) computed without hooks."""
        tokenizer = BertTokenizerFast.from_pretrained(self.model)
        model = BertModel.from_pretrained(self.model).eval()
        squares, counts, tokens = {}, np.zeros(model.config.vocab_size), 0
        for line in [l for l in TEXT.splitlines() if l.strip()]:
            ids = tokenizer(line, return_tensors="pt")["input_ids"]
            if max_tokens is not None and tokens + ids.numel() > max_tokens:
                break
            with torch.no_grad():
                out = model(input_ids=ids, output_hidden_states=True)
            for i in range(model.config.num_hidden_layers):
                h = out.hidden_states[i][0].double().numpy()
                for proj in ("query", "key", "value"):
                    name = f"encoder.layer.{i}.attention.self.{proj}.weight"
                    squares[name] = squares.get(name, 0) + (h * h).sum(0)
            first = out.last_hidden_state[0, 0].double().numpy()
            squares["pooler.dense.weight"] = squares.get("pooler.dense.weight", 0) + first * first
            counts += np.bincount(ids.reshape(-1).numpy(), minlength=len(counts))
            tokens += ids.numel()
        stats = {k: v / tokens for k, v in squares.items()}
        stats["embeddings.word_embeddings.weight"] = counts / tokens
        return stats, tokens

    def test_statistics_match_hidden_states_and_token_counts(self):
        out = self.path("importance.safetensors")
        r = self.calibrate(self.model, "--text", self.text, "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        expected, tokens = self.expected()
        with safe_open(out, "np") as f:
            names = set(f.keys())
            meta = f.metadata()
            # 2 layers x 6 Linear + the pooler, and the embedding
            self.assertEqual(len(names), 2 * 6 + 1 + 1)
            for name, value in expected.items():
                got = f.get_tensor(name)
                self.assertEqual(got.dtype, np.float32, name)
                np.testing.assert_allclose(got, value, rtol=2e-6, atol=1e-9, err_msg=name)
            self.assertEqual(f.get_tensor("encoder.layer.1.output.dense.weight").shape, (24,))
        self.assertEqual(meta["tokens"], str(tokens))
        self.assertEqual(meta["lines"], "3")
        with open(self.text, "rb") as t:
            self.assertEqual(meta["text_sha256"], hashlib.sha256(t.read()).hexdigest())
        self.assertEqual(meta["pgkm_calibration"], "1")

    def test_max_tokens_stops_early(self):
        out = self.path("short.safetensors")
        r = self.calibrate(self.model, "--text", self.text, "--out", out, "--max-tokens", 10)
        self.assertEqual(r.returncode, 0, r.stderr)
        with safe_open(out, "np") as f:
            # whole lines only: the first line's 8 tokens, not 2 of the second
            self.assertEqual(f.metadata()["tokens"], str(self.expected(max_tokens=10)[1]))
            self.assertEqual(f.metadata()["lines"], "1")
            freq = f.get_tensor("embeddings.word_embeddings.weight")
            self.assertAlmostEqual(float(freq.sum()), 1.0, places=5)

    def test_bad_inputs_are_clear_errors_and_write_nothing(self):
        out = self.path("never.safetensors")
        empty = self.path("empty.txt")
        with open(empty, "w") as f:
            f.write("\n  \n")
        cases = [
            ((self.model, "--text", self.path("missing.txt"), "--out", out), 1, "missing.txt"),
            ((self.model, "--text", empty, "--out", out), 1, "no text"),
            ((self.path("nomodel"), "--text", self.text, "--out", out), 1, "nomodel"),
            ((self.model, "--text", self.text, "--out", out, "--max-tokens", 1), 2, "--max-tokens"),
        ]
        for args, rc, phrase in cases:
            with self.subTest(phrase=phrase):
                r = self.calibrate(*args)
                self.assertEqual(r.returncode, rc, r.stderr)
                self.assertIn(phrase, r.stderr)
                self.assertFalse(os.path.exists(out))
        self.assertEqual([n for n in os.listdir(self.tmp.name) if ".tmp-" in n], [])


if __name__ == "__main__":
    unittest.main()
