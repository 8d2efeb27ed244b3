#!/usr/bin/env python3
"""Checks that two pgkm runs produced the same outputs, up to wall-clock times.

    python3 tests/e2e/compare_outputs.py --archives A.h5 B.h5 [--reports A.json B.json]
                                         [--stdout A.txt B.txt] [--allow-new-keys]

Archives: every dataset (centroids, codes, counts, kept tensors) must be identical in
dtype, shape and bytes, and every attribute equal, except those that measure time
(`seconds`, `created_utc`, the `seconds_*` of iteration_stats). Reports: equal JSON after
dropping the same time fields. Standard output: equal line by line after masking times
("1.23 s"). With --allow-new-keys, keys present only in B (fields added on purpose) are
listed instead of failing. Exit status 0 when everything matches, 1 otherwise, with
every difference printed.
"""
import argparse
import json
import re
import sys

import h5py
import numpy as np

# `checksum` (schema v3) digests every attribute of its object, the times included, so it
# differs whenever a time does; the data and attributes it covers are compared directly.
TIME_ATTRS = {"seconds", "created_utc", "checksum"}
TIME_KEY = re.compile(r"^seconds(_.*)?$")


def strip_times(value):
    """JSON value with every seconds/seconds_* key removed."""
    if isinstance(value, dict):
        return {k: strip_times(v) for k, v in value.items() if not TIME_KEY.match(k)}
    if isinstance(value, list):
        return [strip_times(v) for v in value]
    return value


def attr_value(name, value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and name in ("iteration_stats", "settings_json", "source_files"):
        return strip_times(json.loads(value))
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class Diff:
    def __init__(self, allow_new_keys):
        self.problems = []
        self.added = []
        self.allow_new_keys = allow_new_keys

    def dicts(self, where, a, b):
        for key in sorted(set(a) | set(b)):
            if key not in b:
                self.problems.append(f"{where}: '{key}' only in A")
            elif key not in a:
                (self.added if self.allow_new_keys else self.problems).append(
                    f"{where}: '{key}' only in B")
            elif isinstance(a[key], dict) and isinstance(b[key], dict):
                self.dicts(f"{where}.{key}", a[key], b[key])
            elif a[key] != b[key]:
                self.problems.append(f"{where}: '{key}' differs: {a[key]!r} != {b[key]!r}")


def attrs_of(obj):
    return {k: attr_value(k, v) for k, v in obj.attrs.items() if k not in TIME_ATTRS}


def compare_archives(diff, path_a, path_b):
    with h5py.File(path_a, "r") as a, h5py.File(path_b, "r") as b:
        diff.dicts("root attributes", attrs_of(a), attrs_of(b))
        for group in ("layers", "tensors"):
            names_a, names_b = list(a[group].keys()), list(b[group].keys())
            if names_a != names_b:
                diff.problems.append(f"/{group}: members differ (or their order)")
                continue
            for name in names_a:
                oa, ob = a[group][name], b[group][name]
                diff.dicts(f"/{group}/{name}", attrs_of(oa), attrs_of(ob))
                datasets = ([(oa, ob)] if isinstance(oa, h5py.Dataset)
                            else [(oa[k], ob[k]) for k in oa.keys()])
                if isinstance(oa, h5py.Group) and list(oa.keys()) != list(ob.keys()):
                    diff.problems.append(f"/{group}/{name}: datasets differ")
                    continue
                for da, db in datasets:
                    if da.dtype != db.dtype or da.shape != db.shape:
                        diff.problems.append(f"{da.name}: dtype/shape {da.dtype}{da.shape} "
                                             f"!= {db.dtype}{db.shape}")
                    elif da[()].tobytes() != db[()].tobytes():
                        diff.problems.append(f"{da.name}: bytes differ")


def compare_reports(diff, path_a, path_b):
    with open(path_a) as fa, open(path_b) as fb:
        a, b = strip_times(json.load(fa)), strip_times(json.load(fb))
    diff.dicts("report", {k: v for k, v in a.items() if k != "layers"},
               {k: v for k, v in b.items() if k != "layers"})
    if len(a["layers"]) != len(b["layers"]):
        diff.problems.append("report: layer counts differ")
        return
    for la, lb in zip(a["layers"], b["layers"]):
        diff.dicts(f"report layer {la.get('name')}", la, lb)


def compare_stdout(diff, path_a, path_b):
    mask = re.compile(r"\d+\.\d+ s\b")
    with open(path_a) as fa, open(path_b) as fb:
        la = [mask.sub("T s", l) for l in fa.read().splitlines()]
        lb = [mask.sub("T s", l) for l in fb.read().splitlines()]
    if la != lb:
        for i, (x, y) in enumerate(zip(la, lb)):
            if x != y:
                diff.problems.append(f"stdout line {i + 1}: {x!r} != {y!r}")
                break
        if len(la) != len(lb):
            diff.problems.append(f"stdout: {len(la)} lines != {len(lb)} lines")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archives", nargs=2, metavar=("A", "B"))
    p.add_argument("--reports", nargs=2, metavar=("A", "B"))
    p.add_argument("--stdout", nargs=2, metavar=("A", "B"))
    p.add_argument("--allow-new-keys", action="store_true")
    args = p.parse_args()
    diff = Diff(args.allow_new_keys)
    if args.archives:
        compare_archives(diff, *args.archives)
    if args.reports:
        compare_reports(diff, *args.reports)
    if args.stdout:
        compare_stdout(diff, *args.stdout)
    for line in diff.added:
        print(f"added: {line}")
    for line in diff.problems:
        print(f"DIFFERENT: {line}")
    print("same outputs" if not diff.problems else f"{len(diff.problems)} differences")
    return 1 if diff.problems else 0


if __name__ == "__main__":
    sys.exit(main())
