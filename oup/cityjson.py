"""Reading CityJSON 1.0, 1.1 and 2.0 and CityJSONSeq: the one reader that `oup import`
(footprints) and `oup tile` (3D Tiles) share.

It knows every way published files spell their CRS (``reference_crs``), walks the
surfaces of every geometry type with their semantics, and splits a model into units of
work that can be parsed and meshed in another process. What it cannot use (materials,
textures) is reported once per file as a warning, never failed on.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import orjson  # city models are big: ~3x faster than json, same errors

VERSIONS = ("1.0", "1.1", "2.0")
SEQ_BATCH = 256     # CityJSONSeq lines per unit of work
DOC_CHUNK = 256     # top-level objects of a CityJSON document per unit of work


class CityModelError(ValueError):
    """The input is not a city model OUP can read; the message says why."""


# -- the CRS, however it is spelled --------------------------------------------------------

# "EPSG:7415", "urn:ogc:def:crs:EPSG::7415", "urn:ogc:def:crs:EPSG:0:7415",
# "http(s)://www.opengis.net/def/crs/EPSG/0/7415", and each part of a compound URN
# ("urn:ogc:def:crs,crs:EPSG::28992,crs:EPSG::5709") or compound URL
# ("http://www.opengis.net/def/crs-compound?1=.../EPSG/0/28992&2=.../EPSG/0/5709").
_EPSG = re.compile(r"EPSG(?:/[^/?&]*/|:[^:,]*:|:)(\d+)", re.IGNORECASE)
# 2D codes whose files carry heights in a known vertical datum by convention
_HEIGHTS_BY_CONVENTION = {"EPSG:28992": ("EPSG:7415", "NAP")}


def reference_crs(ref: str) -> tuple[str, str | None]:
    """(the CRS as ``EPSG:<code>``, a note or None) for a CityJSON ``referenceSystem``."""
    import pyproj

    codes = _EPSG.findall(ref or "")
    if not codes or len(codes) > 2:
        raise CityModelError(
            f"referenceSystem {ref!r} is not an EPSG CRS OUP can read: use e.g. "
            "'https://www.opengis.net/def/crs/EPSG/0/7415', 'urn:ogc:def:crs:EPSG::7415' "
            "or 'EPSG:7415' (or give --crs)")
    crs = f"EPSG:{codes[0]}" if len(codes) == 1 else f"EPSG:{codes[0]}+{codes[1]}"
    try:
        parsed = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError:
        raise CityModelError(f"referenceSystem {ref!r}: {crs} is not a CRS PROJ knows") from None
    if len(codes) == 2:  # a compound: its own EPSG code where it has one (28992+5709: 7415)
        code = parsed.to_epsg()
        crs = f"EPSG:{code}" if code else crs
    if crs in _HEIGHTS_BY_CONVENTION:
        full, datum = _HEIGHTS_BY_CONVENTION[crs]
        return full, f"referenceSystem {crs} is 2D: heights read as {datum} ({full})"
    return crs, None


# -- documents ----------------------------------------------------------------------------

def check_version(doc, name: str) -> None:
    if not isinstance(doc, dict) or doc.get("type") != "CityJSON":
        raise CityModelError(f"{name}: not a CityJSON document (type "
                             f"{doc.get('type') if isinstance(doc, dict) else None!r})")
    version = str(doc.get("version"))
    if not any(version == v or version.startswith(v + ".") for v in VERSIONS):
        raise CityModelError(f"{name}: CityJSON version {doc.get('version')!r} is not "
                             f"supported; use {', '.join(VERSIONS)} (cjio upgrade converts "
                             "older files)")


def unused_appearance(doc: dict, folder: Path, name: str) -> str | None:
    """The one warning for what a file's ``appearance`` holds that is not used."""
    app = doc.get("appearance") or {}
    textures, materials = app.get("textures") or [], app.get("materials") or []
    if not textures and not materials:
        return None
    missing = [t.get("image") for t in textures
               if not (folder / str(t.get("image", ""))).exists()]
    parts = []
    if materials:
        parts.append(f"{len(materials)} materials")
    if textures:
        parts.append(f"{len(textures)} textures" +
                     (f" ({len(missing)} texture images missing)" if missing else ""))
    return f"{name}: {' and '.join(parts)} not used: tiled untextured"


def vertices_of(doc: dict, transform: dict | None) -> np.ndarray:
    v = np.asarray(doc.get("vertices", []), dtype=float).reshape(-1, 3)
    if transform:
        v = v * np.asarray(transform["scale"]) + np.asarray(transform["translate"])
    return v


def lod_of(geom: dict) -> str:
    """A geometry's LoD as text: CityJSON 1.0 wrote numbers (2, 2.2), later versions text."""
    lod = geom.get("lod")
    return str(int(lod)) if isinstance(lod, float) and lod.is_integer() else str(lod)


def lod_key(lod: str):
    try:
        return tuple(int(p) for p in lod.split("."))
    except ValueError:
        return (-1,)


def surfaces(geom: dict):
    """(rings of vertex indices, semantic surface type or None) for each surface."""
    b, t = geom.get("boundaries", []), geom.get("type")
    sem = geom.get("semantics") or {}
    kinds = [s.get("type") for s in sem.get("surfaces", [])]
    values = sem.get("values")

    def kind(idx):
        return kinds[idx] if isinstance(idx, int) and 0 <= idx < len(kinds) else None

    if t in ("MultiSurface", "CompositeSurface"):
        for i, surf in enumerate(b):
            yield surf, kind(values[i] if values else None)
    elif t == "Solid":
        for si, shell in enumerate(b):
            for i, surf in enumerate(shell):
                yield surf, kind(values[si][i] if values else None)
    elif t in ("MultiSolid", "CompositeSolid"):
        for di, solid in enumerate(b):
            for si, shell in enumerate(solid):
                for i, surf in enumerate(shell):
                    yield surf, kind(values[di][si][i] if values else None)


# -- a model as units of work ------------------------------------------------------------

@dataclass
class CityModel:
    """An opened CityJSON or CityJSONSeq file: its CRS, the warnings found while opening
    it, and its units of work (``SeqLines`` or ``Part``), each giving (doc, vertices)."""
    crs: str
    warnings: list
    units: object  # an iterator, consumed once


def open_city_model(path: Path, crs: str | None, seq: bool | None = None) -> CityModel:
    """Open a CityJSON or CityJSONSeq file (``seq``; by default, as its name ends in
    ``.jsonl``). ``crs`` is used where the file declares none."""
    path = Path(path)
    if path.is_dir():
        raise CityModelError(f"{path} is a directory; give CityJSON (.city.json) or "
                             "CityJSONSeq (.city.jsonl) files")
    if path.stat().st_size == 0:
        raise CityModelError(f"{path.name} is empty, not valid JSON")
    if path.name.endswith(".jsonl") if seq is None else seq:
        fh = path.open(encoding="utf-8")
        try:
            header = orjson.loads(fh.readline())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            fh.close()
            raise CityModelError(f"{path.name}: the first line is not valid JSON "
                                 f"({exc})") from None
        try:
            check_version(header, path.name)
            src, notes = declared_crs(header, crs, path)
        except CityModelError:
            fh.close()
            raise
        return CityModel(src, notes, _seq(fh, path.name, header.get("transform")))
    try:
        doc = orjson.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CityModelError(f"{path.name} is not valid JSON ({exc})") from None
    return city_model_of(doc, path, crs)


def city_model_of(doc, path: Path, crs: str | None) -> CityModel:
    """A CityJSON document already read from ``path`` (e.g. found in a file named
    ``.json``), as ``open_city_model`` opens one."""
    check_version(doc, path.name)
    src, notes = declared_crs(doc, crs, path)
    if note := unused_appearance(doc, path.parent, path.name):
        notes.append(note)
    verts = vertices_of(doc, doc.get("transform"))
    return CityModel(src, notes, (Part(chunk, verts)
                                  for chunk in _chunks(doc.get("CityObjects", {}))))


def declared_crs(doc: dict, fallback: str | None, path: Path) -> tuple[str, list]:
    ref = (doc.get("metadata") or {}).get("referenceSystem")
    if ref:
        crs, note = reference_crs(ref)
        return crs, [f"{path.name}: {note}"] if note else []
    if fallback:
        return reference_crs(fallback)[0], []
    raise CityModelError(f"{path.name} declares no referenceSystem: give --crs "
                         "(e.g. --crs EPSG:7415 for RD New + NAP)")


def _seq(fh, name: str, transform: dict | None):
    with fh:
        batch, first = [], 2
        for n, line in enumerate(fh, start=2):
            if line.strip():
                batch.append(line)
            if len(batch) >= SEQ_BATCH:
                yield SeqLines(name, transform, first, batch)
                batch, first = [], n + 1
        if batch:
            yield SeqLines(name, transform, first, batch)


@dataclass
class SeqLines:
    """A batch of CityJSONSeq lines, parsed where it is meshed (possibly another process)."""
    name: str
    transform: dict | None
    first_line: int
    lines: list

    def documents(self, skip: Callable[[int], None] | None = None):
        """Each line's (CityJSONFeature, its vertices). A line that is not JSON is an
        error, or, with ``skip``, handed to it by number and left out."""
        for n, line in enumerate(self.lines, start=self.first_line):
            try:
                feat = orjson.loads(line)
            except json.JSONDecodeError as exc:
                if skip is None:
                    raise CityModelError(f"{self.name}: a line near {n} is not JSON "
                                         f"({exc})") from None
                skip(n)
                continue
            yield feat, vertices_of(feat, self.transform)


@dataclass
class Part:
    """Some top-level objects (with their children) of a CityJSON document."""
    objects: dict
    vertices: np.ndarray

    def documents(self, skip: Callable[[int], None] | None = None):
        yield {"CityObjects": self.objects}, self.vertices


def _chunks(objs: dict):
    top = [k for k, o in objs.items() if not o.get("parents")]
    for i in range(0, len(top), DOC_CHUNK):
        chunk = {}
        for k in top[i:i + DOC_CHUNK]:
            chunk[k] = objs[k]
            for c in objs[k].get("children", []):
                if c in objs:
                    chunk[c] = objs[c]
        yield chunk
