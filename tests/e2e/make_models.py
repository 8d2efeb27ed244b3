"""Helpers for the pgkm end-to-end tests: small safetensors models written by hand.

numpy has no bfloat16, so every file is written here from raw bytes: an 8-byte
little-endian header length, the JSON header {name: {dtype, shape, data_offsets}}, then
the data section. The same helpers write deliberately malformed files.
"""
import json
import os
import struct

import numpy as np

DTYPE_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
              "I8": 1, "U8": 1, "U16": 2, "U32": 4, "U64": 8, "BOOL": 1}
NP_DTYPE = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
            "I16": "<i2", "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8",
            "BOOL": "u1", "BF16": "<u2"}


def f32_to_bf16_bits(x):
    """float32 array -> uint16 bfloat16 bits, round to nearest even (finite inputs)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = u + 0x7FFF + ((u >> 16) & 1)
    return (u >> 16).astype(np.uint16)


def bf16_bits_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def encode(values, dtype):
    """float array -> little-endian bytes of `dtype` (F32, F16, BF16 or an integer type)."""
    values = np.asarray(values)
    if dtype == "BF16":
        return f32_to_bf16_bits(values.astype(np.float32)).astype("<u2").tobytes()
    return np.ascontiguousarray(values.astype(NP_DTYPE[dtype])).tobytes()


def decode(raw, dtype, shape):
    """Bytes of a tensor -> numpy array (BF16 widened to float32)."""
    if dtype == "BF16":
        return bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2")).reshape(shape)
    return np.frombuffer(raw, dtype=NP_DTYPE[dtype]).reshape(shape)


class Tensor:
    def __init__(self, name, dtype, shape, data):
        self.name, self.dtype, self.shape, self.data = name, dtype, list(shape), bytes(data)


def header_bytes(obj):
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


def write_raw(path, header, data=b"", pad=True):
    """Writes a safetensors-shaped file from a header (dict, str or bytes) and data bytes."""
    if isinstance(header, dict):
        header = header_bytes(header)
    elif isinstance(header, str):
        header = header.encode("utf-8")
    if pad:
        header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        f.write(data)


def write_safetensors(path, tensors, metadata=None):
    """Writes `tensors` (list of Tensor) contiguously in list order."""
    header, data, offset = {}, bytearray(), 0
    if metadata:
        header["__metadata__"] = metadata
    for t in tensors:
        header[t.name] = {"dtype": t.dtype, "shape": t.shape,
                          "data_offsets": [offset, offset + len(t.data)]}
        data += t.data
        offset += len(t.data)
    write_raw(path, header, bytes(data))


def read_safetensors(path):
    """Parses a safetensors file by hand: {name: Tensor}, plus the metadata dict."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        out[name] = Tensor(name, h["dtype"], h["shape"], blob[8 + n + b:8 + n + e])
    return out, meta


def weight(rng, shape, scale=0.1):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def small_model(dtype="F32", seed=0):
    """A few quantizable weights, biases, a LayerNorm and an I64 buffer (list of Tensor)."""
    rng = np.random.default_rng(seed)
    t = []

    def add(name, shape, dt=dtype, values=None):
        v = weight(rng, shape) if values is None else values
        t.append(Tensor(name, dt, shape, encode(v, dt)))

    add("embed_tokens.weight", [100, 16])
    add("layers.0.fc1.weight", [64, 32])
    add("layers.0.fc1.bias", [64])
    add("layers.0.fc2.weight", [32, 64])
    add("layers.0.fc2.bias", [32])
    add("layers.0.norm.weight", [32], values=1 + weight(rng, [32]))
    add("layers.0.norm.bias", [32])
    add("position_ids", [1, 100], dt="I64", values=np.arange(100).reshape(1, 100))
    return t


# The native config for small_model: the embedding at b=8, the linears at b=4.
SMALL_CONFIG = """\
pgkm: 1
defaults:
  block_size: 4
  n_centroids: 16
rules:
  - match: 'embed_tokens\\.weight'
    block_size: 8
  - match: 'layers\\.\\d+\\.fc\\d\\.weight'
"""
SMALL_QUANTIZED = ["embed_tokens.weight", "layers.0.fc1.weight", "layers.0.fc2.weight"]


def big_model(n_layers=8, rows=512, cols=512, seed=1):
    """Several large Linear weights, for runs that take a noticeable time per layer."""
    rng = np.random.default_rng(seed)
    return [Tensor(f"layers.{i}.fc.weight", "F32", [rows, cols],
                   encode(weight(rng, [rows, cols]), "F32")) for i in range(n_layers)]


BIG_CONFIG = """\
pgkm: 1
defaults:
  block_size: 4
  n_centroids: 256
rules:
  - match: 'layers\\.\\d+\\.fc\\.weight'
"""


def write_sharded(directory, tensors, n_shards=2, shard_metadata=None, index_metadata=None):
    """A Hugging Face sharded model: model-0000i-of-0000n.safetensors + index.json.
    shard_metadata(i): the __metadata__ of shard i (default none); index_metadata: extra
    keys of the index's "metadata" beside total_size."""
    os.makedirs(directory, exist_ok=True)
    weight_map = {}
    per = (len(tensors) + n_shards - 1) // n_shards
    for i in range(n_shards):
        name = f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
        part = tensors[i * per:(i + 1) * per]
        write_safetensors(os.path.join(directory, name), part,
                          shard_metadata(i) if shard_metadata else None)
        for t in part:
            weight_map[t.name] = name
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(len(t.data) for t in tensors),
                                **(index_metadata or {})},
                   "weight_map": weight_map}, f)
    return directory


def dequantize(centroids, codes, shape, block_size):
    """fairseq order: subvector j = blk*out + row is W[row, blk*b:(blk+1)*b] (float32)."""
    c = np.asarray(centroids).astype(np.float32)
    rows = shape[0]
    blocks = int(np.prod(shape[1:])) // block_size
    w = c[np.asarray(codes).astype(np.int64)].reshape(blocks, rows, block_size)
    return np.ascontiguousarray(w.transpose(1, 0, 2)).reshape(shape)
