"""Derive pygeoapi's configuration and OpenAPI document from the catalogue.

Nobody edits the generated files: they are rewritten on every start and reload,
under ``<data_dir>/generated/``.
"""
from __future__ import annotations

import copy
import json
import os
from datetime import datetime
from pathlib import Path

import yaml

from oup.http.openapi import extend_openapi
from oup.http.openapi_dutch import in_dutch
from oup.http.page_texts import write_catalogue
from oup.catalog import Catalog, Collection
from oup.languages import DEFAULT, LANGUAGES, LOCALES
from oup.http.pygeoapi_adapter import openapi_document, static_folder
from oup.settings import ROOT, Settings
from oup.store import FeatureStore, StoreError
from oup.store.geometry import CRS84, SUPPORTED_CRS

TEMPLATE = ROOT / "config" / "pygeoapi.yml"
RECORDS_ID = "catalog"  # the OGC API Records catalogue of the collections
RECORD_PROPERTIES = ("type", "title", "description", "keywords", "license", "owner",
                     "contact_email", "classification", "synthetic")


def _sensor_keys(sensors: Collection) -> dict:
    """What the providers over a sensors collection need to know about it."""
    st = sensors.stream
    return {"sensor_id_field": sensors.id_field, "property_field": st.property_field,
            "units": {k: p.unit for k, p in st.properties.items()},
            "titles": {k: str(p.title) for k, p in st.properties.items()}}


def _derived_provider(coll: Collection, catalog: Catalog) -> dict:
    sensors = catalog[coll.derived_from]
    provider = {"type": "feature", "data": coll.id, "sensors": sensors.id, "id_field": "id",
                "storage_crs": CRS84, "crs": list(SUPPORTED_CRS),
                "include_extra_query_parameters": True, **_sensor_keys(sensors)}
    if coll.observations_of:
        provider.update(name="oup.http.provider.ObservationsProvider", time_field="phenomenonTime")
    else:
        provider.update(name="oup.http.provider.TimeSliceProvider", time_field="slice_start",
                        slice_seconds=coll.time_slices.seconds)
    return provider


def _resource(coll: Collection, store: FeatureStore, catalog: Catalog,
              first_observation: str | None) -> dict | None:
    try:
        extent = store.extent(coll.derived_from or coll.id)
    except StoreError:
        return None  # declared but not imported yet: not published
    if coll.derived_from:  # live: from the first observation on, open-ended
        extent = {**extent, "interval": [first_observation, None]}
    bbox = coll.extent.bbox or extent["bbox"] or [-180, -90, 180, 90]
    extents: dict = {"spatial": {"bbox": bbox, "crs": CRS84}}
    interval = coll.extent.interval or extent["interval"]
    if interval and any(interval):
        begin, end = (None if v is None else
                      (v if isinstance(v, datetime) else datetime.fromisoformat(
                          v.replace("Z", "+00:00"))) for v in interval)
        extents["temporal"] = {"begin": begin, "end": end,
                               "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    links = [{"type": "text/html", "rel": "license", "title": coll.license.name,
              "href": coll.license.url or "https://creativecommons.org/licenses/"}]
    provider = {
        "type": "feature",
        "name": "oup.http.provider.OUPProvider",
        "data": coll.id,
        "id_field": "id",
        "storage_crs": CRS84,
        "crs": list(SUPPORTED_CRS),
        "include_extra_query_parameters": True,  # unknown ones are answered with a 400
    }
    if coll.time_field:
        provider["time_field"] = coll.time_field
    if coll.editable and coll.editable.own:  # these roles see only what they wrote
        provider["own_roles"] = list(coll.editable.own)
        provider["all_roles"] = sorted({*coll.editable.create, *coll.editable.change,
                                        *coll.editable.delete} - set(coll.editable.own))
    if coll.title_field:
        provider["title_field"] = coll.title_field
    providers = [provider]
    if coll.derived_from:
        providers = [_derived_provider(coll, catalog)]
    elif coll.stream:
        providers.append({"type": "edr", "name": "oup.sensors.edr.SensorEDRProvider", "data": coll.id,
                          **_sensor_keys(coll)})
    return {
        "type": "collection",
        # the items page's columns (and its column picker): the schema, in its order
        "oup_fields": [f.name for f in store.fields(coll.id)] if not coll.derived_from else [],
        "title": coll.title.localised(),
        "description": _described(coll),
        "keywords": _keywords(coll),
        "links": links,
        "extents": extents,
        "providers": providers,
    }


_SYNTHETIC = {"en": " (synthetic values: made up for the demo, not real figures)",
              "nl": " (synthetische waarden: verzonnen voor de demo, geen echte cijfers)"}


def _described(coll: Collection) -> str | dict[str, str]:
    """The description in each language it has (pygeoapi picks the reader's)."""
    if not coll.description.translations and not coll.synthetic:
        return str(coll.description)
    return {lang: coll.description.in_(lang) + (_SYNTHETIC[lang] if coll.synthetic else "")
            for lang in LANGUAGES}


def _keywords(coll: Collection) -> list[str] | dict[str, list[str]]:
    """The keywords per language when any has a translation (pygeoapi's form for them)."""
    own = [f"classification:{coll.classification.value}"]
    if not any(k.translations for k in coll.keywords):
        return [str(k) for k in coll.keywords] + own
    return {lang: list(dict.fromkeys(k.in_(lang) for k in coll.keywords)) + own
            for lang in LANGUAGES}


def catalogue_records(catalog: Catalog, store: FeatureStore) -> dict[str, dict]:
    """One OGC API Records record per imported collection, by collection id."""
    records = {}
    for coll in catalog:
        try:
            bbox = coll.extent.bbox or store.extent(coll.derived_from or coll.id)["bbox"]
        except StoreError:
            continue
        records[coll.id] = {
            "id": coll.id, "type": "Feature",
            "geometry": _footprint(bbox),  # a collection without geometry has none
            "properties": dict(zip(RECORD_PROPERTIES, (
                "collection", coll.title, coll.description, coll.keywords, coll.license.name,
                coll.owner.name, coll.owner.email or "", coll.classification.value,
                coll.synthetic))),
            "links": [{"rel": "item", "type": "application/geo+json",
                       "href": f"../../{coll.id}", "title": coll.title}],
        }
    return records


def _footprint(bbox: list[float] | None) -> dict | None:
    if bbox is None:
        return None
    x0, y0, x1, y1 = bbox
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1],
                                                [x0, y0]]]}


def records_file(catalog: Catalog, store: FeatureStore, out_dir: Path) -> Path:
    """The Records catalogue file pygeoapi's TinyDB provider serves: public collections
    only (the app adds the others to the JSON answers of those allowed to see them)."""
    public = {cid: rec for cid, rec in catalogue_records(catalog, store).items()
              if catalog[cid].classification.value == "public"}
    path = out_dir / "records.tinydb.json"
    path.write_text(json.dumps({"_default": {str(n): r for n, r in
                                             enumerate(public.values(), start=1)}}))
    return path


def build_config(catalog: Catalog, store: FeatureStore, settings: Settings) -> dict:
    cfg = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    cfg["server"]["url"] = settings.public_url
    for part in ("identification", "provider", "contact"):  # the service is its own home
        cfg["metadata"][part]["url"] = settings.public_url
    cfg["server"]["bind"] = {"host": settings.host, "port": settings.port}
    cfg["server"]["limits"] = {"default_items": settings.page_limit,
                               "max_items": settings.max_page_limit, "on_exceed": "error"}
    cfg["logging"]["level"] = settings.log_level
    # our corrections of pygeoapi templates first, pygeoapi's own for the rest
    cfg["server"]["templates"] = {"path": str(ROOT / "config" / "templates"),
                                  "static": static_folder()}
    resources = {}
    first = None
    if any(c.stream for c in catalog):
        from oup.store import open_observation_store

        first = open_observation_store(settings.store_url).first_time()
    for coll in catalog:
        res = _resource(coll, store, catalog, first)
        if res is not None:
            resources[coll.id] = res
    out = settings.data_dir / "generated"
    out.mkdir(parents=True, exist_ok=True)
    cfg["server"]["locale_dir"] = str(write_catalogue(out))  # the pages' texts in Dutch
    resources[RECORDS_ID] = {
        "type": "collection",
        "title": {"en": "Catalogue of the collections", "nl": "Catalogus van de collecties"},
        "description": {"en": "OGC API Records: every collection with its owner, licence and "
                              "classification",
                        "nl": "OGC API Records: elke collectie met haar eigenaar, licentie en "
                              "rubricering"},
        "keywords": {"en": ["catalogue", "metadata"], "nl": ["catalogus", "metadata"]},
        "links": [],
        "extents": {"spatial": {"bbox": [-180, -90, 180, 90], "crs": CRS84}},
        "providers": [{"type": "record", "name": "TinyDBCatalogue",
                       "data": str(records_file(catalog, store, out)),
                       "id_field": "id", "time_field": None}],
    }
    cfg["resources"] = resources
    return cfg


def write_config(catalog: Catalog, store: FeatureStore, settings: Settings,
                 own_paths: dict | None = None) -> tuple[Path, Path]:
    """Write the pygeoapi config and the OpenAPI document in each language (with
    ``own_paths``, OUP's own endpoints: ``Routes.openapi_paths``); return the paths of
    the config and of the document in the default language (``openapi_file``)."""

    cfg = build_config(catalog, store, settings)
    out = settings.data_dir / "generated"
    cfg_path = out / "pygeoapi-config.yml"
    _replace(cfg_path, yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    unsearched = {cid for cid, res in cfg["resources"].items()
                  if res["providers"][0].get("name") == "oup.http.provider.OUPProvider"
                  and not catalog[cid].search}
    searched = {c.id: c.search for c in catalog if c.search}
    for language in LANGUAGES:  # pygeoapi writes the collections' texts in its first one
        first = [LOCALES[language]] + [x for x in cfg["server"]["languages"]
                                       if x != LOCALES[language]]
        oas = extend_openapi(openapi_document(dict(cfg, server=dict(cfg["server"],
                                                                     languages=first))),
                             copy.deepcopy(own_paths or {}), unsearched, searched,
                             {c.id for c in catalog if c.scenarios})
        _replace(openapi_file(out, language),
                 json.dumps(in_dutch(oas) if language == "nl" else oas, default=str))
    return cfg_path, openapi_file(out, DEFAULT)


def openapi_file(out: Path, language: str) -> Path:
    """The OpenAPI document in ``language`` (``openapi.json``: the default language's,
    which pygeoapi reads)."""
    return out / ("openapi.json" if language == DEFAULT else f"openapi.{language}.json")


def _replace(path: Path, text: str) -> None:
    """Write whole or not at all: every worker writes these files as it starts (all at
    once after a reload), and one must never read another's half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
