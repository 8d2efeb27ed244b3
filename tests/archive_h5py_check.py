#!/usr/bin/env python3
"""Checks a pgkm archive against schema v1 or v2 (docs/ARCHIVE.md) with h5py.

Usage: python3 tests/archive_h5py_check.py ARCHIVE.h5

Exits 0 when the archive conforms, 1 with one message per problem when it does not,
and 77 (ctest SKIP_RETURN_CODE) when h5py or numpy is not installed.
"""
import json
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:
    print(f"SKIP: {e}")
    sys.exit(77)

ROOT_STR = ["format", "tool_version", "config_text", "config_format", "algorithm",
            "settings_json", "source_files", "created_utc"]
ROOT_INT = ["format_version", "seed", "iterations"]
LAYER_STR = ["name", "source_dtype", "module_type", "algorithm", "source_digest",
             "settings_digest", "iteration_stats"]
LAYER_INT = ["block_size", "n_centroids", "iterations", "empty_clusters", "initial_empty",
             "resolution_rounds", "distinct_vectors", "clustered_points", "stopped_early",
             "complete"]
LAYER_FLOAT = ["objective", "seconds"]
DTYPE_SIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2,
              "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def code_bits(k):
    """Bits of one packed code (schema v2): ceil(log2 K), at least 1."""
    return max(1, (int(k) - 1).bit_length())


def unpack_codes(packed, n, bits):
    """n codes of `bits` bits from the packed uint8 stream, least significant bit first."""
    stream = np.unpackbits(np.asarray(packed, np.uint8), bitorder="little")
    fields = stream[: n * bits].reshape(n, bits).astype(np.uint64)
    return (fields << np.arange(bits, dtype=np.uint64)).sum(axis=1), stream[n * bits:]


def read_codes(f, g):
    """The codes of layer group g of archive f (any schema version) as uint64 [numel / b]."""
    shape = [int(d) for d in g.attrs["shape"]]
    n = int(np.prod(shape)) // int(g.attrs["block_size"])
    if int(f.attrs["format_version"]) == 1:
        return g["codes"][()].astype(np.uint64)
    codes, _ = unpack_codes(g["codes"][()], n, int(g["codes"].attrs["bits"]))
    return codes


def escape(name):
    out = name.replace("%", "%25").replace("/", "%2F")
    return "%2E" + out[1:] if set(out) == {"."} else out


class Checker:
    def __init__(self, path):
        self.path = path
        self.problems = []
        self.version = 1

    def fail(self, where, message):
        self.problems.append(f"{self.path}: {where}: {message}")

    def attrs(self, obj, where, strings, ints, floats=()):
        """Checks presence and type of attributes; returns False if any is bad."""
        ok = True
        for kind, names, types in (("a string", strings, (str,)),
                                   ("an integer", ints, (int, np.integer)),
                                   ("a float", floats, (float, np.floating))):
            for name in names:
                if name not in obj.attrs:
                    self.fail(where, f"attribute '{name}' is missing")
                    ok = False
                elif not isinstance(obj.attrs[name], types):
                    self.fail(where, f"attribute '{name}' is not {kind}: {obj.attrs[name]!r}")
                    ok = False
        return ok

    def root(self, f):
        if not self.attrs(f, "root", ROOT_STR, ROOT_INT):
            return False
        if f.attrs["format"] != "pgkm":
            self.fail("root", f"format is {f.attrs['format']!r}, expected 'pgkm'")
        if f.attrs["format_version"] not in (1, 2, 3, 4):
            self.fail("root", f"format_version is {f.attrs['format_version']}, expected 1..4")
            return False
        self.version = int(f.attrs["format_version"])
        for name in ("settings_json", "source_files"):
            try:
                json.loads(f.attrs[name])
            except ValueError as e:
                self.fail("root", f"attribute '{name}' is not JSON: {e}")
        for group in ("layers", "tensors"):
            if not isinstance(f.get(group), h5py.Group):
                self.fail("root", f"group '/{group}' is missing")
                return False
        return True

    def layer(self, link, g):
        where = f"layer '{g.attrs.get('name', link)}'"
        if g.attrs.get("complete") != 1:
            self.fail(where, f"is incomplete (complete = {g.attrs.get('complete')})")
            return
        if not self.attrs(g, where, LAYER_STR, LAYER_INT, LAYER_FLOAT):
            return
        if escape(g.attrs["name"]) != link:
            self.fail(where, f"stored under group name '{link}'")
        shape = [int(d) for d in g.attrs["shape"]]
        k, b = int(g.attrs["n_centroids"]), int(g.attrs["block_size"])
        numel = int(np.prod(shape))
        if len(shape) < 2 or min(shape) < 1 or b < 1 or (numel // shape[0]) % b:
            self.fail(where, f"shape {shape} and block_size {b} do not fit")
            return
        n = numel // b
        if self.version == 1:
            codes_spec = ((n,), (str(np.min_scalar_type(k - 1)),))
        else:  # packed at ceil(log2 K) bits
            codes_spec = (((n * code_bits(k) + 7) // 8,), ("uint8",))
        expected = {"centroids": ((k, b), ("float16", "float32")), "codes": codes_spec}
        if self.version == 1:  # v2 stores no counts: np.bincount(codes, minlength=K)
            expected["counts"] = ((k,), ("uint32",))
        if self.version >= 4 and "column_scales" in g:  # an importance-weighted layer
            expected["column_scales"] = ((numel // shape[0],), ("float32",))
        for name, (want_shape, want_types) in expected.items():
            d = g.get(name)
            if not isinstance(d, h5py.Dataset):
                self.fail(where, f"dataset '{name}' is missing")
                return
            if d.shape != want_shape or str(d.dtype) not in want_types:
                self.fail(where, f"dataset '{name}' is {d.dtype}{list(d.shape)}, expected "
                          f"{' or '.join(want_types)}{list(want_shape)}")
                return
        if self.version == 1:
            codes = g["codes"][()]
        else:
            bits = g["codes"].attrs.get("bits")
            if bits is None or int(bits) != code_bits(k):
                self.fail(where, f"codes attribute 'bits' is {bits}, expected {code_bits(k)}")
                return
            codes, padding = unpack_codes(g["codes"][()], n, int(bits))
            if padding.any():
                self.fail(where, "a padding bit after the last code is set")
        if codes.size and int(codes.max()) >= k:
            self.fail(where, f"code {int(codes.max())} is not below n_centroids {k}")
        if not np.all(np.isfinite(g["centroids"][()])):
            self.fail(where, "centroids hold a non-finite value")

    def kept(self, link, d):
        where = f"tensor '{d.attrs.get('name', link)}'"
        if not self.attrs(d, where, ["name", "dtype"], []):
            return
        if escape(d.attrs["name"]) != link:
            self.fail(where, f"stored under dataset name '{link}'")
        shape = [int(x) for x in d.attrs.get("shape", [])]
        size = DTYPE_SIZE.get(d.attrs["dtype"])
        if size is None:
            self.fail(where, f"unknown dtype {d.attrs['dtype']!r}")
        elif list(d.shape) != shape or d.dtype.itemsize != size:
            self.fail(where, f"dataset is {d.dtype}{list(d.shape)}, attributes say "
                      f"{d.attrs['dtype']}{shape}")

    def source(self, f):
        """Schema v2's /source: the layout JSON and the recorded files."""
        if self.version == 1 or "source" not in f:  # optional: pgkm quantize writes it
            return
        src = f["source"]
        if not isinstance(src, h5py.Group) or "layout" not in src or "files" not in src:
            self.fail("source", "group '/source' with 'layout' and 'files' is missing")
            return
        try:
            layout = json.loads(src["layout"][()].tobytes())
        except ValueError as e:
            self.fail("source", f"layout is not JSON: {e}")
            return
        for key in ("indexed", "index_metadata", "shards"):
            if key not in layout:
                self.fail("source", f"layout has no '{key}'")
        for link, d in src["files"].items():
            name = d.attrs.get("name")
            if not isinstance(name, str) or escape(name) != link or d.dtype != np.uint8:
                self.fail("source", f"file '{link}' has name {name!r}, dtype {d.dtype}")
            elif name.startswith("/") or any(p in ("", ".", "..") for p in name.split("/")):
                self.fail("source", f"file path {name!r} is not a safe relative path")

    def run(self):
        try:
            f = h5py.File(self.path, "r")
        except OSError as e:
            self.fail("file", f"cannot open with h5py: {e}")
            return
        with f:
            if not self.root(f):
                return
            for link, g in f["layers"].items():
                self.layer(link, g)
            for link, d in f["tensors"].items():
                self.kept(link, d)
            self.source(f)


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    checker = Checker(sys.argv[1])
    checker.run()
    for problem in checker.problems:
        print(problem, file=sys.stderr)
    if not checker.problems:
        with h5py.File(sys.argv[1], "r") as f:
            print(f"{sys.argv[1]}: schema v{int(f.attrs['format_version'])} OK "
                  f"({len(f['layers'])} layers, "
                  f"{len(f['tensors'])} kept tensors)")
    return 1 if checker.problems else 0


if __name__ == "__main__":
    sys.exit(main())
