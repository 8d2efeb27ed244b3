#!/usr/bin/env python3
"""Calibration statistics for `pgkm quantize --importance` (docs/CONFIG.md, "Importance").

Runs a Hugging Face model (PyTorch + transformers, offline) over a text file, one
sequence per non-empty line, and writes a safetensors file with

* for every nn.Linear: the mean of x_c^2 over all calibration tokens, for each input
  feature c (a forward pre-hook sees the layer's input x), float32 [in_features];
* for every nn.Embedding (the token embedding, and position or token-type embeddings
  where the model has them): how many times the calibration text looked up each row,
  float32 [num_embeddings] (a forward pre-hook counts the ids it is given: token ids for
  the token embedding, positions for the position embedding).

Each tensor is named after the weight it describes, exactly as that weight is named in the
model's safetensors file (e.g. "encoder.layer.0.attention.self.query.weight"), so pgkm
matches importance to layer by name. The metadata holds "pgkm_importance" = "1",
"token_count", "sequences", "text_sha256" (of the file's bytes), "model" and "max_tokens".

Sequences run one at a time (no padding, so every token counted is a real one), each cut at
the model's maximum length; --max-tokens stops after that many tokens in all (the last
sequence cut to fit).

Usage: python3 launch/calibrate.py MODEL_DIR --text FILE --out IMPORTANCE.safetensors
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class CalibrationError(RuntimeError):
    pass


def weight_names_in_file(model_dir: Path) -> set[str]:
    """Tensor names of the model's safetensors file(s)."""
    from safetensors import safe_open
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        return set(json.loads(index.read_text())["weight_map"])
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise CalibrationError(f"{model_dir}: no .safetensors file")
    names: set[str] = set()
    for f in files:
        with safe_open(str(f), "pt") as h:
            names.update(h.keys())
    return names


def file_name_for(module_name: str, prefix: str, names: set[str]) -> str:
    """The safetensors name of `module_name`'s weight: the module path plus ".weight",
    with the model's base prefix ("bert.") added or removed when that is how the file
    names it."""
    plain = f"{module_name}.weight"
    candidates = [plain]
    if prefix:
        candidates.append(f"{prefix}.{plain}")
        if plain.startswith(prefix + "."):
            candidates.append(plain[len(prefix) + 1:])
    for c in candidates:
        if c in names:
            return c
    return plain


def calibrate(model_dir: str, text_path: str, max_tokens: int | None = None):
    """Returns (tensors: dict name -> float32 torch tensor, metadata: dict)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model_path = Path(model_dir)
    raw = Path(text_path).read_bytes()
    lines = [l.strip() for l in raw.decode("utf-8").splitlines() if l.strip()]
    if not lines:
        raise CalibrationError(f"{text_path}: no non-empty line to calibrate with")
    if max_tokens is not None and max_tokens < 1:
        raise CalibrationError(f"--max-tokens {max_tokens} must be at least 1")
    tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_path), local_files_only=True,
                                      torch_dtype=torch.float32)
    model.eval()
    names = weight_names_in_file(model_path)
    prefix = getattr(model, "base_model_prefix", "") or ""

    sums: dict[str, torch.Tensor] = {}  # float64 sums of x^2 per input feature
    hooks = []
    for mod_name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            key = file_name_for(mod_name, prefix, names)
            sums[key] = torch.zeros(mod.in_features, dtype=torch.float64)

            def hook(_m, args, key=key):
                x = args[0].detach().to(torch.float64)
                sums[key] += (x * x).reshape(-1, x.shape[-1]).sum(dim=0)
            hooks.append(mod.register_forward_pre_hook(hook))
    counts: dict[str, torch.Tensor] = {}  # row lookups of every embedding
    for mod_name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Embedding):
            key = file_name_for(mod_name, prefix, names)
            counts[key] = torch.zeros(mod.num_embeddings, dtype=torch.float64)

            def count(m, args, key=key):
                counts[key] += torch.bincount(args[0].reshape(-1),
                                              minlength=m.num_embeddings).to(torch.float64)
            hooks.append(mod.register_forward_pre_hook(count))
    emb_name = next(n for n, m in model.named_modules() if m is model.get_input_embeddings())
    emb_key = file_name_for(emb_name, prefix, names)

    limit = getattr(tokenizer, "model_max_length", 512)
    limit = min(limit if limit and limit < 1_000_000 else 512,
                getattr(model.config, "max_position_embeddings", 512))
    tokens = 0
    sequences = 0
    with torch.no_grad():
        for line in lines:
            enc = tokenizer(line, return_tensors="pt", truncation=True, max_length=limit)
            ids = enc["input_ids"]
            if max_tokens is not None:
                room = max_tokens - tokens
                if room <= 0:
                    break
                if ids.shape[1] > room:
                    enc = {k: v[:, :room] for k, v in enc.items()}
                    ids = enc["input_ids"]
            model(**enc)
            tokens += ids.numel()
            sequences += 1
    for h in hooks:
        h.remove()
    tensors = {k: (v / tokens).to(torch.float32).contiguous() for k, v in sums.items()}
    for k, v in counts.items():
        if k in names:  # an embedding the weights file holds (not a buffer-only module)
            tensors[k] = v.to(torch.float32).contiguous()
    metadata = {
        "pgkm_importance": "1",
        "token_count": str(tokens),
        "sequences": str(sequences),
        "text_sha256": hashlib.sha256(raw).hexdigest(),
        "text": os.path.basename(text_path),
        "model": os.path.basename(os.path.normpath(model_dir)),
        "max_tokens": "" if max_tokens is None else str(max_tokens),
        "linear": "mean of x_c^2 over all calibration tokens, per input feature",
        "embedding": "row lookups of every nn.Embedding (" + emb_key + ": token ids)",
    }
    return tensors, metadata


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", help="Hugging Face model folder (config, tokenizer, weights)")
    ap.add_argument("--text", required=True, help="calibration text, one sequence per line")
    ap.add_argument("--out", required=True, help="importance safetensors file to write")
    ap.add_argument("--max-tokens", type=int, default=None,
                    help="stop after this many tokens in all")
    args = ap.parse_args(argv)
    try:
        from safetensors.torch import save_file
        tensors, metadata = calibrate(args.model_dir, args.text, args.max_tokens)
        tmp = args.out + ".tmp"
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, args.out)
    except (CalibrationError, OSError, ValueError) as e:
        print(f"calibrate.py: error: {e}", file=sys.stderr)
        return 1
    print(f"calibrate.py: {len(tensors)} tensors from {metadata['token_count']} tokens "
          f"({metadata['sequences']} sequences) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
