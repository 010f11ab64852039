"""The map labels' glyphs: protobuf as MapLibre reads it, signed distance fields that are
high inside a character and low outside, and ranges that are not ours refused."""
from __future__ import annotations

import numpy as np
import pytest

from oup.tiles.glyphs import BORDER, FONT, NoGlyphs, glyph_range


def _read(data: bytes) -> list[tuple[int, object]]:
    """Protobuf wire format, one level: (field number, int or bytes)."""
    out, i = [], 0

    def varint():
        nonlocal i
        shift = value = 0
        while True:
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value
    while i < len(data):
        key = varint()
        if key & 7 == 0:
            out.append((key >> 3, varint()))
        elif key & 7 == 2:
            n = varint()
            out.append((key >> 3, data[i:i + n]))
            i += n
        else:
            raise AssertionError(f"unexpected wire type {key & 7}")
    return out


def _unzigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _glyphs(start: int) -> dict[int, dict]:
    (stack,) = [v for k, v in _read(glyph_range(FONT, start, start + 255)) if k == 1]
    fields = _read(stack)
    assert dict(fields)[1] == FONT.encode() and dict(fields)[2] == f"{start}-{start + 255}".encode()
    out = {}
    for _, raw in (f for f in fields if f[0] == 3):
        g = dict(_read(raw))
        out[g[1]] = {"bitmap": g.get(2, b""), "width": g[3], "height": g[4],
                     "left": _unzigzag(g[5]), "top": _unzigzag(g[6]), "advance": g[7]}
    return out


def test_a_range_holds_the_latin_characters_as_distance_fields():
    glyphs = _glyphs(0)
    assert set(range(32, 127)) <= set(glyphs) and 0xEB in glyphs  # ë, as Dutch names have
    a = glyphs[ord("A")]
    w, h = a["width"], a["height"]
    assert 10 <= h <= 24 and w > 5 and a["advance"] > 5 and a["top"] < 0
    sdf = np.frombuffer(a["bitmap"], np.uint8).reshape(h + 2 * BORDER, w + 2 * BORDER)
    assert sdf[0, 0] < 100 and sdf.max() > 191  # far outside low; inside over the edge
    # down the middle of an A: its apex and crossbar inside (high), between its feet low
    middle = sdf[:, BORDER + w // 2]
    assert (middle > 191).sum() >= 4 and middle[BORDER + h - 1] < 191 and middle[0] < 150
    space = glyphs[ord(" ")]
    assert space["bitmap"] == b"" and space["advance"] > 0


def test_ranges_and_fonts_that_are_not_ours_are_refused():
    assert _glyphs(512) == {}  # beyond what is rendered: a valid, empty range
    with pytest.raises(NoGlyphs):
        glyph_range("Open Sans Regular", 0, 255)
    with pytest.raises(NoGlyphs):
        glyph_range(FONT, 3, 258)
