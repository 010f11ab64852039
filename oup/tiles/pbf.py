"""Protobuf written by hand, field by field: the few messages OUP serves (map glyphs,
a vector tile's layer header) need no schema compiler. The bulk of a vector tile is
written by compiled loops (``oup.store.mvt_kernels``)."""
from __future__ import annotations


def varint(n: int) -> bytes:
    """A non-negative integer as a base-128 varint."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value) -> bytes:
    """One protobuf field: bytes and text length-delimited, integers as varints."""
    if isinstance(value, (bytes, str)):
        data = value.encode() if isinstance(value, str) else value
        return varint(number << 3 | 2) + varint(len(data)) + data
    return varint(number << 3) + varint(value)
