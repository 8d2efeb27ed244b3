#!/usr/bin/env python3
"""Checks a pgkm archive against schema v1 (docs/ARCHIVE.md) with h5py.

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


def escape(name):
    out = name.replace("%", "%25").replace("/", "%2F")
    return "%2E" + out[1:] if set(out) == {"."} else out


class Checker:
    def __init__(self, path):
        self.path = path
        self.problems = []

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
        if f.attrs["format_version"] != 1:
            self.fail("root", f"format_version is {f.attrs['format_version']}, expected 1")
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
        expected = {"centroids": ((k, b), ("float16", "float32")),
                    "codes": ((numel // b,), (str(np.min_scalar_type(k - 1)),)),
                    "counts": ((k,), ("uint32",))}
        for name, (want_shape, want_types) in expected.items():
            d = g.get(name)
            if not isinstance(d, h5py.Dataset):
                self.fail(where, f"dataset '{name}' is missing")
                return
            if d.shape != want_shape or str(d.dtype) not in want_types:
                self.fail(where, f"dataset '{name}' is {d.dtype}{list(d.shape)}, expected "
                          f"{' or '.join(want_types)}{list(want_shape)}")
                return
        codes = g["codes"][()]
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
            print(f"{sys.argv[1]}: schema v1 OK ({len(f['layers'])} layers, "
                  f"{len(f['tensors'])} kept tensors)")
    return 1 if checker.problems else 0


if __name__ == "__main__":
    sys.exit(main())
