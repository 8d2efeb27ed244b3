#!/usr/bin/env python3
"""Calibration statistics of a Hugging Face model, for importance-weighted quantization.

    python3 launch/calibrate.py MODEL_DIR --text FILE --out IMPORTANCE.safetensors
                                [--max-tokens N]

Runs the model (PyTorch + transformers, offline: nothing is downloaded) over the text,
one line at a time (each non-empty line is one input, truncated to the model's maximum
length; one at a time, so no padding token is ever counted), and writes one float32
tensor per weight that pgkm can quantize:

- for every `torch.nn.Linear`, under the name of its weight in the model's safetensors
  file (for example `encoder.layer.0.attention.self.query.weight`), the mean of x_c^2 over
  every calibration token for each input feature c: shape [in_features]. To first order a
  layer's output error is sum_c E[x_c^2] (w_c - w_hat_c)^2 (issue 13), so this is the
  weight of column c's error;
- for the input (token) embedding, under its weight's name, the frequency of each token
  id among the calibration tokens (count / tokens): shape [vocabulary].

The file's `__metadata__` records `pgkm_calibration` (format version 1), `tokens` (how
many were run), `lines`, `text_sha256` (of the text file's bytes) and `model`.

Names are matched to the safetensors file of MODEL_DIR (one file or a sharded index): a
module's parameter name is used as it is when the file has it, else the one file key that
ends with "." + that name (models saved with a prefix such as `bert.`); a module with no
or with several matches is an error. Exit status 0, 1 for a bad input (named), 2 for bad
usage.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile

FORMAT_VERSION = "1"


class CalibrationError(Exception):
    """A bad input, with the file or value named in the message."""


def weight_names_in_files(model_dir: str) -> set[str]:
    """Every tensor name in the model's safetensors file(s)."""
    from safetensors import safe_open

    index = os.path.join(model_dir, "model.safetensors.index.json")
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.isfile(index):
        with open(index) as f:
            return set(json.load(f)["weight_map"])
    if os.path.isfile(single):
        with safe_open(single, "np") as f:
            return set(f.keys())
    raise CalibrationError(f"{model_dir}: no model.safetensors or "
                           "model.safetensors.index.json")


def file_name_of(param_name: str, names: set[str]) -> str:
    """The safetensors name of a module parameter (see the module docstring)."""
    if param_name in names:
        return param_name
    matches = [n for n in names if n.endswith("." + param_name)]
    if len(matches) != 1:
        what = "no tensor" if not matches else f"{len(matches)} tensors ({', '.join(sorted(matches)[:3])})"
        raise CalibrationError(f"parameter {param_name}: {what} in the model's safetensors "
                               "file match it")
    return matches[0]


def read_lines(path: str) -> tuple[list[str], str]:
    """The non-empty lines of the text file and the sha256 of its bytes."""
    if not os.path.isfile(path):
        raise CalibrationError(f"{path}: not a regular file")
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CalibrationError(f"{path}: not UTF-8 text (byte {e.start})") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise CalibrationError(f"{path}: no text (every line is empty)")
    return lines, hashlib.sha256(data).hexdigest()


def calibrate(model_dir: str, text_path: str, max_tokens: int | None):
    """(tensors, metadata): the statistics described in the module docstring."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer

    if not os.path.isdir(model_dir):
        raise CalibrationError(f"{model_dir}: not a model folder")
    lines, digest = read_lines(text_path)
    names = weight_names_in_files(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    try:
        model = AutoModel.from_pretrained(model_dir, dtype=torch.float32)
    except TypeError:  # transformers before 4.56 names it torch_dtype
        model = AutoModel.from_pretrained(model_dir, torch_dtype=torch.float32)
    model.eval()

    sums: dict[str, torch.Tensor] = {}
    hooks = []
    for module_name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            key = file_name_of(f"{module_name}.weight", names)
            sums[key] = torch.zeros(module.in_features, dtype=torch.float64)

            def record(_module, inputs, key=key):
                x = inputs[0].detach().to(torch.float64)
                sums[key] += (x * x).reshape(-1, x.shape[-1]).sum(0)

            hooks.append(module.register_forward_pre_hook(record))
    embedding = model.get_input_embeddings()
    embedding_name = next(n for n, m in model.named_modules() if m is embedding)
    embedding_key = file_name_of(f"{embedding_name}.weight", names)
    counts = torch.zeros(embedding.num_embeddings, dtype=torch.float64)

    limit = tokenizer.model_max_length
    if not isinstance(limit, int) or limit > 100_000:
        limit = getattr(model.config, "max_position_embeddings", 512)
    tokens = used_lines = 0
    with torch.no_grad():
        for line in lines:
            batch = tokenizer(line, return_tensors="pt", truncation=True, max_length=limit)
            if max_tokens is not None and tokens + batch["input_ids"].numel() > max_tokens:
                if tokens > 0:
                    break  # whole lines only, except a first line longer than the budget
                batch = tokenizer(line, return_tensors="pt", truncation=True,
                                  max_length=max_tokens)
            ids = batch["input_ids"]
            model(**batch)
            counts += torch.bincount(ids.reshape(-1), minlength=counts.numel()).to(torch.float64)
            tokens += ids.numel()
            used_lines += 1
    for hook in hooks:
        hook.remove()
    tensors = {key: (total / tokens).to(torch.float32).contiguous() for key, total in sums.items()}
    tensors[embedding_key] = (counts / tokens).to(torch.float32).contiguous()
    metadata = {
        "pgkm_calibration": FORMAT_VERSION,
        "tokens": str(tokens),
        "lines": str(used_lines),
        "text_sha256": digest,
        "model": os.path.basename(os.path.normpath(model_dir)),
        "statistics": "Linear: mean of x_c^2 per input feature; embedding: token frequency",
    }
    return tensors, metadata


def write_atomically(path: str, tensors, metadata) -> None:
    """Temporary file in the same folder, then rename: never a half-written output."""
    from safetensors.torch import save_file

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp-", dir=folder)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Per-feature activation statistics (Linear) and token frequencies "
        "(embedding) of a Hugging Face model over a text, as safetensors.")
    parser.add_argument("model_dir", help="Hugging Face model folder (config, tokenizer, "
                        "safetensors weights)")
    parser.add_argument("--text", required=True, help="calibration text, one input per line")
    parser.add_argument("--out", required=True, help="output .safetensors")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="stop before the line that would go past this many tokens (default: the whole text)")
    args = parser.parse_args()
    if args.max_tokens is not None and args.max_tokens < 2:
        parser.error(f"--max-tokens {args.max_tokens}: at least 2 (one input needs its "
                     "special tokens)")
    try:
        tensors, metadata = calibrate(args.model_dir, args.text, args.max_tokens)
        write_atomically(args.out, tensors, metadata)
    except CalibrationError as e:
        print(f"calibrate.py: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"calibrate.py: error: {e.filename or args.out}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"{args.out}: {len(tensors) - 1} Linear layers and the embedding, "
          f"{metadata['tokens']} tokens from {metadata['lines']} lines of {args.text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
