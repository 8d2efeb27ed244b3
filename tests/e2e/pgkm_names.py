"""pgkm's checkpoint part file names, computed as pgkm does (io/archive.h
LayerCheckpoints::part_file_name), with a port of core/digest.cpp digest64."""
import re
import struct

M64 = (1 << 64) - 1
MUL_A, MUL_B = 0xbb179cfe12ac0fa5, 0x73db38936f25e1d1
MUL_C, MUL_D = 0x82732a24eae4ffd5, 0x6827753b084ce45f
SEEDS = (0x7787b6685001b06f, 0x62094b1b7ac3bb2d, 0x13cb82efb482a913, 0x05c14d3c1ddfb403)


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def _lane(acc, word):
    return _rotl(((acc ^ word) * MUL_A) & M64, 31)


def _fold(h, word):
    return (_rotl(h ^ ((word * MUL_B) & M64), 31) * MUL_A + MUL_D) & M64


def digest64(data: bytes) -> int:
    n = len(data)
    h = SEEDS[0] ^ ((n * MUL_C) & M64)
    i = 0
    if n >= 32:
        lanes = list(SEEDS)
        while i + 32 <= n:
            for k in range(4):
                lanes[k] = _lane(lanes[k], struct.unpack_from("<Q", data, i + 8 * k)[0])
            i += 32
        for lane in lanes:
            h = _fold(h, lane)
    while i + 8 <= n:
        h = _fold(h, struct.unpack_from("<Q", data, i)[0])
        i += 8
    if i < n:
        h = _fold(h, int.from_bytes(data[i:], "little"))
    h ^= h >> 31
    h = (h * MUL_C) & M64
    h ^= h >> 29
    h = (h * MUL_D) & M64
    h ^= h >> 32
    return h


def part_file_name(tensor: str) -> str:
    raw = tensor.encode("utf-8")
    readable = re.sub(rb"[^A-Za-z0-9._-]", b"_", raw[:64]).decode("ascii")
    return f"{readable}-{digest64(raw):016x}.h5"
