"""Glyphs for map labels, made here: MapLibre draws text from signed distance fields
(SDF) of each character, fetched in ranges of 256 as protobuf (``/fonts/{stack}/{range}.pbf``).
Maps usually take them from a font server on the internet; OUP's pages ask nothing of
any other host, so the glyphs come from the platform itself, rendered once per range
and worker from the font Pillow carries (Aileron, SIL Open Font License), 24 px.

An SDF pixel says how far it is from the glyph's outline: 191 on it, more inside, less
outside, 8 px from it down to 0 (MapLibre's convention). The glyph's box carries 3 px of
border all round, and its metrics follow the glyph PBFs map fonts are published as.
"""
from __future__ import annotations

from functools import cache

import numpy as np

from oup.errors import NotFound
from oup.http.routes import Call, Endpoint, Format, Param
from oup.tiles.pbf import field

FONT = "OUP Sans"
SIZE = 24  # px: the size MapLibre scales its glyphs from
BORDER = 3  # px of SDF around each glyph's box
RADIUS = 8.0  # px over which the distance field falls from the outline to 0
CUTOFF = 0.25  # share of the range outside the outline: the outline is at 191
_RENDERED = (range(32, 127), range(160, 512))  # Latin, Latin-1, Latin Extended-A and -B


class NoGlyphs(NotFound):
    """Not a font or range this platform has."""


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 31)


def _sdf(mask: np.ndarray) -> np.ndarray:
    """The distance field of a glyph's coverage (0..255), with its border."""
    h, w = mask.shape
    inside = np.zeros((h + 2 * BORDER, w + 2 * BORDER), bool)
    inside[BORDER:BORDER + h, BORDER:BORDER + w] = mask >= 128
    ys, xs = np.indices(inside.shape)
    pts = np.column_stack([ys.ravel(), xs.ravel()]).astype(float)
    flat = inside.ravel()
    dist = np.full(flat.shape, RADIUS * 2)
    for mine, other in ((flat, ~flat), (~flat, flat)):
        if mine.any() and other.any():  # each pixel: the nearest of the other kind
            d = np.sqrt(((pts[mine, None, :] - pts[None, other, :]) ** 2).sum(-1)).min(1)
            dist[mine] = d - 0.5
    signed = np.where(flat, -dist, dist)
    value = 255 - 255 * (signed / RADIUS + CUTOFF)
    return np.clip(np.round(value), 0, 255).astype(np.uint8).reshape(inside.shape)


@cache
def _font():
    from PIL import ImageFont

    return ImageFont.load_default(size=SIZE)


def _glyph(code: int) -> bytes:
    font = _font()
    ch = chr(code)
    advance = round(font.getlength(ch))
    image, (left, top) = font.getmask2(ch, mode="L")
    w, h = image.size
    fields = [field(1, code)]
    if w and h:
        mask = np.asarray(image, dtype=np.uint8).reshape(h, w)
        fields.append(field(2, _sdf(mask).tobytes()))
    # top: the box's top relative to the font's ascent line (``top`` is measured down
    # from it), the reference map glyph PBFs use
    fields += [field(3, w), field(4, h), field(5, _zigzag(left)),
               field(6, _zigzag(-top)), field(7, advance)]
    return b"".join(fields)


@cache
def endpoints() -> list[Endpoint]:
    """The glyphs the map styles name (``glyphs``: ``/fonts/{fontstack}/{range}.pbf``)."""
    return [Endpoint(
        "/fonts/{fontstack}/{range}.pbf", "Glyphs of a font for map labels (SDF, protobuf)",
        serve, "styles", "getGlyphs", params=(
            Param("fontstack", f"font names, comma-separated (this platform has {FONT!r})",
                  where="path"),
            Param("range", "a range of 256 characters, e.g. 0-255",
                  {"type": "string", "pattern": r"\d{1,5}-\d{1,5}"}, "path")),
        formats=(Format("pbf", "application/x-protobuf"),))]


def serve(call: Call):
    from urllib.parse import unquote

    from flask import Response

    start, _, end = call.path["range"].partition("-")
    data = glyph_range(unquote(call.path["fontstack"]), int(start), int(end))
    return Response(data, content_type="application/x-protobuf",
                    headers={"Cache-Control": "public, max-age=86400"})


def glyph_range(stack: str, start: int, end: int) -> bytes:
    """The PBF of characters ``start``..``end`` (a range of 256) for font ``stack``."""
    if FONT not in [s.strip() for s in stack.split(",")]:
        raise NoGlyphs(f"no font {stack!r} here; the maps use {FONT!r}")
    if start % 256 or end != start + 255 or end > 65535:
        raise NoGlyphs(f"{start}-{end} is not a glyph range (0-255, 256-511, ...)")
    codes = [c for c in range(start, end + 1) if any(c in r for r in _RENDERED)]
    stack_fields = field(1, FONT) + field(2, f"{start}-{end}") + b"".join(
        field(3, _glyph(c)) for c in codes)
    return field(1, stack_fields)
