"""Byte-level mutations of a seed's bytes: bit flips, byte sets, interesting integers at random
offsets and at the offsets of real flatbuffer fields, truncations, inserted and deleted runs,
copied blocks, and splices of two files."""

from __future__ import annotations

import struct

import numpy as np

from .fields import Fields, field_map
from .helpers import chance, pick, weighted

INTERESTING = {
    1: (0, 1, 2, 0x7F, 0x80, 0xFE, 0xFF),
    2: (0, 1, 2, 4, 0x7FFF, 0x8000, 0xFFFF),
    4: (0, 1, 2, 3, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0x7FFFFFFE, 255, 256, 60000, 65536, 1 << 24),
    8: (0, 1, 0xFFFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 1 << 32, 1 << 40),
}
PACK = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


def pick_offset(rng: np.random.Generator, data: bytearray, fields: Fields, width: int) -> tuple[int, int, str]:
    """(offset, width, label): a real field 80% of the time, else a random (aligned) offset."""
    if fields and chance(rng, 0.8):
        f = pick(rng, fields)
        if f.offset + f.width <= len(data):
            return f.offset, f.width, f.label
    if len(data) < width:
        width = 1
    offset = int(rng.integers(0, max(1, len(data) - width + 1))) // width * width
    return offset, width, "random offset"


def interesting_value(rng: np.random.Generator, data: bytearray, offset: int, width: int) -> int:
    current = struct.unpack_from(PACK[width], data, offset)[0]
    mask = (1 << (8 * width)) - 1
    related = [current + 1, current - 1, current + 4, current * 2, len(data), len(data) - offset]
    related.append(int(rng.integers(0, 1024)))
    return pick(rng, list(INTERESTING[width]) * 2 + related) & mask


def flip_bit(rng: np.random.Generator, data: bytearray, fields: Fields) -> str:
    offset, width, label = pick_offset(rng, data, fields, 1)
    bit = int(rng.integers(8 * width))
    data[offset + bit // 8] ^= 1 << (bit % 8)
    return f"flip bit {bit} at {offset} ({label})"


def set_integer(rng: np.random.Generator, data: bytearray, fields: Fields) -> str:
    offset, width, label = pick_offset(rng, data, fields, pick(rng, [1, 4, 4]))
    value = interesting_value(rng, data, offset, width)
    old = struct.unpack_from(PACK[width], data, offset)[0]
    struct.pack_into(PACK[width], data, offset, value)
    return f"set {width}-byte {old:#x} -> {value:#x} at {offset} ({label})"


def set_random_bytes(rng: np.random.Generator, data: bytearray, fields: Fields) -> str:
    offset, _, label = pick_offset(rng, data, fields, 1)
    count = min(int(rng.integers(1, 9)), len(data) - offset)
    data[offset : offset + count] = rng.integers(0, 256, count, dtype=np.uint8).tobytes()
    return f"set {count} random bytes at {offset} ({label})"


def truncate(rng: np.random.Generator, data: bytearray, fields: Fields) -> str:
    if fields and chance(rng, 0.5):
        length = pick(rng, fields).offset + int(rng.integers(0, 4))
    else:
        length = int(rng.integers(0, len(data) + 1)) if chance(rng, 0.5) else len(data) - int(rng.integers(1, 33))
    length = max(0, min(length, len(data)))
    del data[length:]
    return f"truncate to {length} bytes"


def insert_or_delete(rng: np.random.Generator, data: bytearray, fields: Fields) -> str:
    offset, _, label = pick_offset(rng, data, fields, 1)
    count = pick(rng, [1, 2, 4, 8, int(rng.integers(1, 256))])
    if chance(rng, 0.5):
        inserted = rng.integers(0, 256, count, dtype=np.uint8).tobytes() if chance(rng, 0.5) else bytes(count)
        data[offset:offset] = inserted
        return f"insert {count} bytes at {offset} ({label})"
    del data[offset : offset + count]
    return f"delete {count} bytes at {offset} ({label})"


def copy_block(rng: np.random.Generator, data: bytearray, fields: Fields) -> str:
    source, _, _ = pick_offset(rng, data, fields, 4)
    target, _, label = pick_offset(rng, data, fields, 4)
    count = min(pick(rng, [4, 8, 16, 64]), len(data) - source, len(data) - target)
    data[target : target + count] = data[source : source + count]
    return f"copy {count} bytes from {source} to {target} ({label})"


BYTE_MUTATORS = {flip_bit: 3, set_integer: 6, set_random_bytes: 2, truncate: 1, insert_or_delete: 1, copy_block: 1}


def mutate_bytes(rng: np.random.Generator, data: bytes) -> tuple[bytes, list[str]]:
    """One to four byte mutations; offsets are picked among the unmutated file's fields."""
    fields = field_map(data)
    mutated = bytearray(data)
    steps = []
    for _ in range(int(min(4, rng.geometric(0.55)))):
        if not mutated:
            break
        mutator = weighted(rng, BYTE_MUTATORS)
        steps.append(f"bytes: {mutator(rng, mutated, fields)}")
    return bytes(mutated), steps


def splice(rng: np.random.Generator, first: bytes, second: bytes) -> tuple[bytes, str]:
    """A head of one file and a tail of the other, or a block of the second pasted into the first."""
    i, j = int(rng.integers(0, len(first) + 1)), int(rng.integers(0, len(second) + 1))
    if chance(rng, 0.5):
        return first[:i] + second[j:], f"splice: first[:{i}] + second[{j}:]"
    count = int(rng.integers(1, 257))
    block = second[j : j + count]
    return first[:i] + block + first[i + len(block) :], f"splice: {len(block)} bytes of second at {j} over first at {i}"
