"""The one seam between OUP and pygeoapi.

OUP uses pygeoapi for what it is good at (routes, content negotiation, HTML, links,
OpenAPI) and keeps to itself what must be exact or strict (parameter checks, geodesy,
access). Wherever that means reaching into pygeoapi beyond its plugin interface, it
happens here and nowhere else, and every name relied on is listed in ``RELIED_ON``
with its reason: ``tests/test_pygeoapi_adapter.py`` fails when the pinned pygeoapi no
longer has one of them, instead of a silent bypass after an upgrade.

The replacements in ``pygeoapi.api.itemtypes`` all follow from one rule: the request
was checked and parsed once by ``oup.http.params`` before pygeoapi saw it, so pygeoapi's
own parsers hand back what the checks found instead of parsing again.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import os
from pathlib import Path
from typing import Any

from oup.http.params import CHECKED_ITEMS, parse_filter
from oup.security import VISIBLE

# "module:name" -> why OUP relies on it. A name OUP replaces is written
# "module:name@function": the pygeoapi function that must call it by that global name,
# or the replacement would be silently bypassed.
RELIED_ON: dict[str, str] = {
    "pygeoapi.flask_app:BLUEPRINT": "pygeoapi's routes, registered on the app OUP builds",
    "pygeoapi.flask_app:api_": "the API object behind those routes; its resources are "
                               "wrapped so each request sees only what it may",
    "pygeoapi.flask_app:STATIC_FOLDER": "pygeoapi's static files, served as its own app does",
    "pygeoapi.flask_app:API_RULES": "pygeoapi's URL rules (strict slashes), kept on our app",
    "pygeoapi.api.itemtypes:validate_bbox@get_collection_items":
        "replaced: bbox was checked once, by oup.http.params",
    "pygeoapi.api.itemtypes:transform_bbox@get_collection_items":
        "replaced: bbox-crs goes through oup.geodesy, in the checks",
    "pygeoapi.api.itemtypes:validate_datetime@get_collection_items":
        "replaced: checked once; a well-formed datetime outside the extent matches nothing "
        "(200) instead of a 400",
    "pygeoapi.api.itemtypes:parse_cql2_text@get_collection_items":
        "replaced: the filter is parsed once, by the checks (CQL2 as the standard writes it)",
    "pygeoapi.api.itemtypes:parse_cql2_json@get_collection_items":
        "replaced: as parse_cql2_text, for CQL2 JSON",
    "pygeoapi.api.itemtypes:modify_pygeofilter@get_collection_items":
        "replaced: filter-crs literals go through oup.geodesy in the checks, not "
        "pygeoapi/crs.py",
    "pygeoapi.api.itemtypes:to_json@get_collection_items":
        "replaced: a page of features as JSON by orjson (~15x faster than the json module "
        "pygeoapi uses: ~2 ms of a 100-feature page); the same JSON",
    "pygeoapi.api.itemtypes:to_json@get_collection_item": "as above, for one item",
    "pygeoapi.util:to_json": "pygeoapi's own, for what orjson cannot write",
    "pygeoapi.util:json_serial": "pygeoapi's way with dates, bytes, decimals",
    "pygeoapi.api.itemtypes:load_plugin@get_collection_items":
        "replaced: OUP's providers are built once per collection and configuration "
        "generation",
    "pygeoapi.api.itemtypes:load_plugin@get_collection_item": "as above, for one item",
    "pygeoapi.api.itemtypes:load_plugin@get_collection_queryables": "as above, for queryables",
    "pygeoapi.api.collection:load_plugin@gen_collection": "as above, for collection documents",
    "pygeoapi.api.environmental_data_retrieval:load_plugin@get_collection_edr_query":
        "as above, for EDR queries",
    "pygeoapi.plugin:load_plugin": "what the replaced load_plugin calls for a new provider",
    "pygeoapi.openapi:get_oas": "the OpenAPI document of the generated configuration",
    "pygeoapi.provider.base:BaseProvider": "the feature provider interface (oup.http.provider)",
    "pygeoapi.provider.base:ProviderInvalidQueryError": "a client's error, from a provider",
    "pygeoapi.provider.base:ProviderItemNotFoundError": "no such item, from a provider",
    "pygeoapi.provider.base:ProviderConnectionError": "the store is not answering",
    "pygeoapi.provider.base:ProviderNoDataError": "an EDR query with nothing in it",
    "pygeoapi.provider.base:SchemaType": "what get_schema is asked for",
    "pygeoapi.provider.base_edr:BaseEDRProvider": "the EDR provider interface (oup.sensors.edr)",
}

_LOADERS = ("pygeoapi.api.itemtypes", "pygeoapi.api.collection",
            "pygeoapi.api.environmental_data_retrieval")


class AppAlreadyBuilt(RuntimeError):
    """pygeoapi reads its configuration once per process, at import: one app per process."""


def relied_on_missing() -> list[str]:
    """The entries of ``RELIED_ON`` the installed pygeoapi does not satisfy. Read from the
    source, not imported: ``pygeoapi.flask_app`` loads a configuration when imported."""
    trees: dict[str, ast.Module | None] = {}
    missing = []
    for ref in RELIED_ON:
        module, _, rest = ref.partition(":")
        name, _, caller = rest.partition("@")
        if module not in trees:
            spec = importlib.util.find_spec(module)
            trees[module] = (ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
                             if spec and spec.origin else None)
        tree = trees[module]
        if tree is None or name not in _top_level_names(tree):
            missing.append(ref)
        elif caller and not _calls(tree, caller, name):
            missing.append(ref)
    return missing


def _top_level_names(tree) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def _calls(tree, function: str, name: str) -> bool:
    """Whether top-level ``function`` calls ``name`` as a plain (module-global) name."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function:
            return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                       and n.func.id == name for n in ast.walk(node))
    return False


def static_folder() -> str:
    """pygeoapi's own static files (CSS, JS, images for the HTML pages)."""
    import pygeoapi

    return str(Path(pygeoapi.__file__).parent / "static")


def openapi_document(cfg: dict) -> dict:
    """pygeoapi's OpenAPI document for the configuration ``cfg``."""
    from pygeoapi.openapi import get_oas

    return get_oas(cfg)


# -- providers: one per collection and configuration generation -------------------------

class ProviderCache:
    """OUP's providers hold no per-request state: build each once per collection (and
    type), per configuration generation, instead of once per request."""

    def __init__(self):
        self.generation = 0
        self._built: dict[tuple, Any] = {}

    def new_generation(self) -> None:
        self.generation += 1
        self._built.clear()

    def load(self, plugin_type: str, plugin_def: dict):
        from pygeoapi.plugin import load_plugin

        name = plugin_def.get("name", "")
        if plugin_type != "provider" or not name.startswith("oup."):
            return load_plugin(plugin_type, plugin_def)  # pygeoapi's own: as it builds them
        key = (self.generation, name, plugin_def.get("type"), plugin_def.get("data"))
        provider = self._built.get(key)
        if provider is None:  # two threads may both build one; either will do
            provider = self._built[key] = load_plugin(plugin_type, plugin_def)
        return provider


PROVIDERS = ProviderCache()


# -- the checked request, handed to pygeoapi's items handler ----------------------------

_originals: dict[str, Any] = {}  # pygeoapi's own, for requests the checks do not cover


def _validated_bbox(bbox: str) -> list[float]:
    """An items request's bbox as checked (already CRS84); the Records catalogue's,
    which the checks do not cover, as pygeoapi validates it."""
    checked = CHECKED_ITEMS.get()
    if checked is not None and checked.bbox is not None:
        return list(checked.bbox)
    return _originals["validate_bbox"](bbox)


def _storage_bbox(bbox: list[float], from_crs: str, to_crs: str, **kwargs) -> list[float]:
    """A bbox in the storage CRS, which is CRS84 for every collection here."""
    from oup.store.geometry import bbox_to_crs84

    if CHECKED_ITEMS.get() is not None:  # _validated_bbox gave the checked one: CRS84
        return bbox
    return bbox_to_crs84(bbox, from_crs)


def _checked_filter(text, lang: str):
    checked = CHECKED_ITEMS.get()
    if checked is not None and checked.filter is not None:
        return checked.filter
    return parse_filter(text, lang)


def _to_json(content: dict, pretty: bool = False) -> str:
    """pygeoapi's ``to_json``, by orjson (pygeoapi's own when asked to indent by 4, or
    for what orjson cannot write)."""
    import orjson
    from pygeoapi.util import json_serial, to_json

    if not pretty:
        try:
            return orjson.dumps(content, default=json_serial, option=orjson.OPT_NON_STR_KEYS
                                | orjson.OPT_SERIALIZE_NUMPY).decode()
        except TypeError:
            pass
    return to_json(content, pretty)


def _install_overrides() -> None:
    import pygeoapi.api.itemtypes as itemtypes

    _originals.setdefault("validate_bbox", itemtypes.validate_bbox)
    # after oup.http.params checked the request, pygeoapi takes the results as they are
    itemtypes.validate_bbox = _validated_bbox
    itemtypes.transform_bbox = _storage_bbox
    itemtypes.validate_datetime = lambda extents, datetime_=None: datetime_
    itemtypes.parse_cql2_text = lambda text: _checked_filter(text, "cql2-text")
    itemtypes.parse_cql2_json = lambda text: _checked_filter(text, "cql2-json")
    itemtypes.modify_pygeofilter = lambda node, **kwargs: node
    itemtypes.to_json = _to_json
    for module in _LOADERS:
        importlib.import_module(module).load_plugin = PROVIDERS.load


# -- access: pygeoapi lists, describes and serves only what the request may see ---------

class VisibleResources(dict):
    """pygeoapi's ``resources`` as the current request may see them (``VISIBLE``)."""

    def __init__(self, resources: dict, controlled: set[str]):
        super().__init__(resources)
        self.controlled = controlled

    def _ok(self, key) -> bool:
        seen = VISIBLE.get()
        return seen is None or key not in self.controlled or key in seen

    def __iter__(self):
        return (k for k in super().__iter__() if self._ok(k))

    def keys(self):
        return [k for k in super().keys() if self._ok(k)]

    def items(self):
        return [(k, v) for k, v in super().items() if self._ok(k)]

    def values(self):
        return [v for k, v in super().items() if self._ok(k)]

    def __contains__(self, key):
        return super().__contains__(key) and self._ok(key)

    def __getitem__(self, key):
        if not self._ok(key):
            raise KeyError(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def __len__(self):
        return len(self.keys())


# -- the Flask app ------------------------------------------------------------------------

_built_from: list[Path] = []


def flask_app(config_path: Path, openapi_path: Path, controlled: set[str]):
    """A new Flask app serving pygeoapi's routes for the generated configuration.

    pygeoapi reads that configuration once, when ``pygeoapi.flask_app`` is first
    imported; a second app in one process would silently serve the first one's
    configuration, so it is refused (``AppAlreadyBuilt``). Gunicorn builds one per worker.
    """
    if _built_from:
        raise AppAlreadyBuilt(
            f"an OUP app was already built in this process (from {_built_from[0]}): "
            "pygeoapi reads its configuration once per process; start a new process")
    os.environ["PYGEOAPI_CONFIG"] = str(config_path)
    os.environ["PYGEOAPI_OPENAPI"] = str(openapi_path)
    _install_overrides()
    from flask import Flask

    import pygeoapi.flask_app as pygeoapi_flask

    app = Flask("oup", static_folder=pygeoapi_flask.STATIC_FOLDER, static_url_path="/static")
    app.url_map.strict_slashes = pygeoapi_flask.API_RULES.strict_slashes
    app.register_blueprint(pygeoapi_flask.BLUEPRINT)
    api = pygeoapi_flask.api_
    api.config["resources"] = VisibleResources(api.config["resources"], controlled)
    PROVIDERS.new_generation()
    _built_from.append(Path(config_path))
    return app
