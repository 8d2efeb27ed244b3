#!/usr/bin/env python3
"""Write a synthetic RoBERTa-base-shaped model (Hugging Face names) as safetensors.

    python3 bench/make_roberta_model.py OUT.safetensors [--seed 0] [--layers 12] [--dtype F32|F16]

The file has the tensors of Hugging Face's RobertaForSequenceClassification for
roberta-base (hidden 768, intermediate 3072, vocabulary 50265, 514 positions, 2 labels):

    roberta.embeddings.{word_embeddings [50265,768], position_embeddings [514,768],
                        token_type_embeddings [1,768]}.weight
    roberta.embeddings.LayerNorm.{weight,bias} [768]
    roberta.encoder.layer.N.attention.self.{query,key,value}.{weight [768,768], bias [768]}
    roberta.encoder.layer.N.attention.output.dense.{weight [768,768], bias [768]}
    roberta.encoder.layer.N.attention.output.LayerNorm.{weight,bias} [768]
    roberta.encoder.layer.N.intermediate.dense.{weight [3072,768], bias [3072]}
    roberta.encoder.layer.N.output.dense.{weight [768,3072], bias [768]}
    roberta.encoder.layer.N.output.LayerNorm.{weight,bias} [768]
    classifier.dense.{weight [768,768], bias [768]}
    classifier.out_proj.{weight [2,768], bias [2]}

With configs/roberta_base.yaml, exactly 1 + 6 * LAYERS tensors are quantized (73 for
the default 12 layers): the word embedding and the six linear weights of every layer.

The values are random but shaped like trained weights: every weight matrix is
normal(0, 0.02) with 0.1% of its entries (positions drawn at random) multiplied by a
factor uniform in [5, 10] (outliers); the padding row of the word and position
embeddings (index 1, RoBERTa's padding_idx) is zero, as in the trained model;
LayerNorm weights are 1 + normal(0, 0.02), biases normal(0, 0.01).

Everything comes from numpy.random.default_rng(SEED), drawn in a fixed order, so the
same arguments write the same bytes. F16 output is the float32 draw rounded by numpy.
"""
import argparse
import os
import sys

import numpy as np

try:
    from safetensors.numpy import save_file
except ImportError:  # pragma: no cover - message only
    sys.exit("make_roberta_model.py: error: the Python package 'safetensors' is required "
             "(pip install safetensors)")

HIDDEN = 768
INTERMEDIATE = 3072
VOCAB = 50265
POSITIONS = 514
TYPE_VOCAB = 1
N_LABELS = 2
PADDING_IDX = 1

WEIGHT_STD = 0.02
OUTLIER_FRACTION = 0.001
OUTLIER_SCALE = (5.0, 10.0)
LN_STD = 0.02
BIAS_STD = 0.01


def weight(rng, shape, padding_row=None):
    """normal(0, 0.02) with 0.1% outliers scaled by 5..10; optional zero padding row."""
    w = rng.standard_normal(shape, dtype=np.float32)
    w *= np.float32(WEIGHT_STD)
    flat = w.reshape(-1)
    n_out = max(1, int(round(flat.size * OUTLIER_FRACTION)))
    idx = rng.integers(0, flat.size, size=n_out)
    flat[idx] *= rng.uniform(*OUTLIER_SCALE, size=n_out).astype(np.float32)
    if padding_row is not None:
        w[padding_row] = 0.0
    return w


def bias(rng, n):
    return (rng.standard_normal(n, dtype=np.float32) * np.float32(BIAS_STD))


def layer_norm(rng, prefix, tensors):
    tensors[prefix + ".weight"] = (1.0 + rng.standard_normal(HIDDEN, dtype=np.float32)
                                   * np.float32(LN_STD)).astype(np.float32)
    tensors[prefix + ".bias"] = bias(rng, HIDDEN)


def linear(rng, prefix, out_features, in_features, tensors):
    tensors[prefix + ".weight"] = weight(rng, (out_features, in_features))
    tensors[prefix + ".bias"] = bias(rng, out_features)


def build(seed, n_layers):
    """Return {name: float32 array}, in a fixed insertion order."""
    rng = np.random.default_rng(seed)
    t = {}
    e = "roberta.embeddings."
    t[e + "word_embeddings.weight"] = weight(rng, (VOCAB, HIDDEN), padding_row=PADDING_IDX)
    t[e + "position_embeddings.weight"] = weight(rng, (POSITIONS, HIDDEN),
                                                 padding_row=PADDING_IDX)
    t[e + "token_type_embeddings.weight"] = weight(rng, (TYPE_VOCAB, HIDDEN))
    layer_norm(rng, e + "LayerNorm", t)
    for n in range(n_layers):
        p = f"roberta.encoder.layer.{n}."
        for proj in ("query", "key", "value"):
            linear(rng, p + "attention.self." + proj, HIDDEN, HIDDEN, t)
        linear(rng, p + "attention.output.dense", HIDDEN, HIDDEN, t)
        layer_norm(rng, p + "attention.output.LayerNorm", t)
        linear(rng, p + "intermediate.dense", INTERMEDIATE, HIDDEN, t)
        linear(rng, p + "output.dense", HIDDEN, INTERMEDIATE, t)
        layer_norm(rng, p + "output.LayerNorm", t)
    linear(rng, "classifier.dense", HIDDEN, HIDDEN, t)
    linear(rng, "classifier.out_proj", N_LABELS, HIDDEN, t)
    return t


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Write a synthetic RoBERTa-base-shaped safetensors model "
                    "(Hugging Face tensor names).")
    ap.add_argument("out", metavar="OUT.safetensors", help="output file")
    ap.add_argument("--seed", type=int, default=0, help="numpy default_rng seed (default 0)")
    ap.add_argument("--layers", type=int, default=12,
                    help="number of encoder layers (default 12, as roberta-base)")
    ap.add_argument("--dtype", choices=("F32", "F16"), default="F32",
                    help="stored dtype of every tensor (default F32)")
    args = ap.parse_args(argv)
    if args.layers < 0:
        ap.error(f"--layers must be >= 0, got {args.layers}")
    if args.seed < 0:
        ap.error(f"--seed must be >= 0, got {args.seed}")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        ap.error(f"output directory does not exist: {out_dir}")

    tensors = build(args.seed, args.layers)
    if args.dtype == "F16":
        tensors = {k: v.astype(np.float16) for k, v in tensors.items()}
    tmp = args.out + ".tmp"
    try:
        # One metadata key only: safetensors writes metadata keys in hash-map order,
        # which varies between runs, and the file must be byte-for-byte reproducible.
        save_file(tensors, tmp, metadata={"format": "pt"})
        os.replace(tmp, args.out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    n_params = sum(v.size for v in tensors.values())
    print(f"{args.out}: {len(tensors)} tensors, {n_params:,} parameters, {args.dtype}, "
          f"{args.layers} layers, seed {args.seed}, {os.path.getsize(args.out) / 2**20:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
