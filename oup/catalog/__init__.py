"""The catalogue: one folder per collection under ``collections/``, declared in YAML.

Everything else (pygeoapi resources, OpenAPI, import jobs, the Records catalogue)
is derived from what is loaded here, so a mistake is reported once, at start-up,
naming the file and the field.
"""
from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from oup.languages import Text

COLLECTION_FILE = "collection.yml"
SOURCE_FORMATS = ("cityjson", "cityjsonseq", "geojson", "gpkg", "csv", "shapefile", "flatgeobuf",
                  "gml", "kml", "geojsonseq", "xlsx", "ods", "geoparquet")
# the format a file's name says; a .zip holds a Shapefile (or another dataset GDAL reads)
_SUFFIXES = ((".city.jsonl", "cityjsonseq"), (".city.json", "cityjson"), (".geojson", "geojson"),
             (".json", "geojson"), (".gpkg", "gpkg"), (".csv", "csv"), (".tsv", "csv"),
             (".txt", "csv"), (".shp", "shapefile"), (".zip", "shapefile"),
             (".shp.zip", "shapefile"), (".fgb", "flatgeobuf"), (".gml", "gml"),
             (".kml", "kml"), (".geojsonl", "geojsonseq"), (".geojsons", "geojsonseq"),
             (".xlsx", "xlsx"), (".ods", "ods"), (".parquet", "geoparquet"),
             (".geoparquet", "geoparquet"))
PAYLOAD_FORMATS = ("flat", "sensorthings", "senml", "tts")
_ID = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class CatalogError(ValueError):
    """A collection is declared wrong. Says which file and which field."""

    def __init__(self, file: Path | str, field: str, message: str):
        self.file, self.field, self.message = str(file), field, message
        super().__init__(f"{file}: {field}: {message}")


class Classification(str, Enum):
    public = "public"
    internal = "internal"
    restricted = "restricted"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class License(_Strict):
    name: str = Field(description="the licence's name, e.g. CC-BY 4.0")
    url: str | None = Field(None, description="where its text is")


class Contact(_Strict):
    name: str = Field(description="the owner: an organisation or a department")
    email: str | None = Field(None, description="whom to write about the data")
    url: str | None = Field(None, description="a page about the owner or the data")


class Source(_Strict):
    """One input file of a collection, relative to the collection folder."""

    path: str = Field(description="the file, relative to the collection folder")
    format: Literal[SOURCE_FORMATS] | None = Field(  # type: ignore[valid-type]
        None, description="the file's format; default: from its name")
    crs: str | None = Field(None, description="CRS of the file when it does not say (e.g. EPSG:7415)")
    lod: str | None = Field(None, description="CityJSON level of detail to read; default the highest")
    x_field: str | None = Field(None, description="CSV, sheet: column with x / longitude")
    y_field: str | None = Field(None, description="CSV, sheet: column with y / latitude")
    delimiter: Literal[",", ";", "\t", "|"] | None = Field(
        None, description="CSV: the column separator; default: detected")
    decimal: Literal[".", ","] | None = Field(
        None, description="CSV: the decimal mark; default: detected (a comma when numbers "
                          "are written 91930,5)")
    layer: str | None = Field(None, description="layer or sheet of a multi-layer file; "
                                                "default: the first")
    attributes: dict[str, Any] = Field(
        default_factory=dict, description="attributes the source states once for all features")

    @model_validator(mode="after")
    def _infer_format(self) -> "Source":
        if self.format is None:
            name = self.path.lower()
            for suffix, fmt in _SUFFIXES:
                if name.endswith(suffix):
                    self.format = fmt
                    break
            else:
                raise ValueError(f"cannot tell the format of {self.path!r}; "
                                 f"give format: one of {', '.join(SOURCE_FORMATS)}")
        return self


class Tiles3D(_Strict):
    """A 3D Tiles product of the collection, made by ``oup tile``."""

    source: str = Field(description="city model (CityJSON, CityJSONSeq) or DEM (GeoTIFF), "
                                    "relative to the collection folder")
    crs: str | None = Field(None, description="CRS when the file does not say")
    lod: str | None = Field(None, description="level of detail; default: each LoD present")
    z_offset_attribute: str | None = Field(
        None, description="attribute (metres) added to every z of an object: for models "
                          "drawn on z = 0 with their ground height as an attribute")
    vertex_budget: int = Field(50_000, gt=100, description=(
        "vertices per leaf tile at most (tiles above them hold coarse blocks of half as "
        "many); up to 65,535 a tile's indices are 16-bit"))


class VectorTiles(_Strict):
    """How the collection is published as vector tiles (OGC API Tiles, MVT)."""

    minzoom: int = Field(0, ge=0, le=24, description="first zoom level with tiles "
                         "(WebMercatorQuad levels; other grids take the level of that scale)")
    maxzoom: int = Field(22, ge=0, le=24, description="last zoom level with tiles")
    properties: list[str] | None = Field(
        None, description="the attributes that go in the tiles; default: every one")

    @model_validator(mode="after")
    def _range(self) -> "VectorTiles":
        if self.minzoom > self.maxzoom:
            raise ValueError("minzoom must not exceed maxzoom")
        return self


_COLOUR = r"^#[0-9a-fA-F]{6}$"


class Choropleth(_Strict):
    """Polygons coloured by classes of a number: colours[i] below breaks[i], the last
    colour from the last break up."""

    property: str = Field(description="the numeric attribute, e.g. a_inw")
    breaks: list[float] = Field(min_length=1, description="class limits, ascending")
    colours: list[str] = Field(min_length=2, description="one more colour than breaks")
    nodata: str = Field("#cccccc", pattern=_COLOUR, description="colour where it has no value")
    legend: Text | None = Field(None, description="what the legend calls the attribute "
                                "(a text, or {nl: ..., en: ...}); default: its name")

    @model_validator(mode="after")
    def _classes(self) -> "Choropleth":
        if self.breaks != sorted(self.breaks):
            raise ValueError("breaks must be ascending")
        if len(self.colours) != len(self.breaks) + 1:
            raise ValueError("give one more colour than breaks")
        for colour in self.colours:
            if not re.match(_COLOUR, colour):
                raise ValueError(f"{colour!r} is not a colour like #1f4e5f")
        return self


class MapStyle(_Strict):
    """How the collection is drawn on maps (OGC API Styles, /map); every part optional:
    without it, a colour of its own and a default per geometry type."""

    fill: str | None = Field(None, pattern=_COLOUR, description="fill colour of polygons")
    line: str | None = Field(None, pattern=_COLOUR, description="colour of lines, outlines")
    point: str | None = Field(None, pattern=_COLOUR, description="colour of points")
    opacity: float = Field(0.5, ge=0, le=1, description="fill opacity")
    width: float = Field(1.0, gt=0, le=20, description="line width in pixels")
    choropleth: Choropleth | None = Field(
        None, description="polygons coloured by classes of a number")
    label: str | None = Field(None, description="attribute written on each feature (its "
                                                "name, say); it must go in the tiles")
    label_colour: str = Field("#222222", pattern=_COLOUR, description="colour of the labels")
    visible: bool = Field(True, description="shown when a map opens (else toggled on)")


class Join(_Strict):
    """Attach each row to a geometry of another collection by a shared key."""

    collection: str = Field(description="the geometry collection, e.g. neighbourhoods")
    key: str = Field(description="the key column in this dataset, e.g. buurtcode")
    property: str = Field(description="the matching property of the geometry collection")


class Counts(_Strict):
    """Publish how many features of one collection lie in each area of another: the
    counts, never the features (e.g. residents' reports per neighbourhood). Made at
    import and again after every write to the counted collection; the disclosure rules
    apply to the counts (a small count is suppressed)."""

    of: str = Field(description="the collection whose features are counted")
    areas: str = Field(description="the collection of areas (polygons), e.g. neighbourhoods")
    key: str = Field(description="the areas' property that names each area, e.g. buurtcode "
                                 "(copied into each count; so is title_field, if the areas "
                                 "have it)")


class DisclosureRuleConfig(_Strict):
    fields: list[str] = Field(min_length=1, description="the fields the rule protects")
    min_group_size: int | None = Field(None, gt=0, description=(
        "suppress them where group_size_field is below this"))
    min_count: int | None = Field(None, gt=0, description="suppress a value below this")
    round_to: int | None = Field(None, gt=1, description="round values to a multiple of this")


class SumConfig(_Strict):
    total: str = Field(description="the field that is the sum of the parts")
    parts: list[str] = Field(min_length=2, description=(
        "fields adding up to it: one suppressed part suppresses another (secondary "
        "suppression), so none is recomputable from the total"))


class DisclosureConfig(_Strict):
    """Statistical disclosure control (see oup/catalog/disclosure.py)."""

    group_size_field: str | None = Field(None, description=(
        "the field holding each row's group size (e.g. inhabitants), for min_group_size"))
    secret_values: list[float] = Field(default_factory=lambda: [-99997], description=(
        "values the source uses for 'secret': stored as empty"))
    rules: list[DisclosureRuleConfig] = Field(default_factory=list,
                                              description="primary suppression and rounding")
    sums: list[SumConfig] = Field(default_factory=list,
                                  description="totals and their parts (secondary suppression)")


class ObservedProperty(_Strict):
    """What a sensor measures: its unit and the range a real reading lies in."""

    title: Text = Field(description="what is measured, as people say it")
    unit: str = Field(description="unit of measure (UCUM symbol where there is one)")
    min: float = Field(description="smallest plausible value; below it is a dead letter")
    max: float = Field(description="largest plausible value; above it is a dead letter")

    @model_validator(mode="after")
    def _range(self) -> "ObservedProperty":
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class Topic(_Strict):
    """An MQTT topic filter and the payload format its messages carry."""

    topic: str = Field(description="MQTT topic filter, e.g. oup/sensors/+/observations")
    format: Literal[PAYLOAD_FORMATS] = Field(  # type: ignore[valid-type]
        description="the payload: flat JSON, a SensorThings Observation, SenML, a TTS uplink")

    @field_validator("topic")
    @classmethod
    def _filter(cls, v):
        levels = v.split("/")
        if not v or any(("+" in lv and lv != "+") or ("#" in lv and lv != "#") for lv in levels) \
                or "#" in levels[:-1]:
            raise ValueError("not an MQTT topic filter ('+' and '#' fill a whole level, "
                             "'#' only last)")
        return v


class Stream(_Strict):
    """Live observations feeding a collection of sensors (see iot_ingest/)."""

    topics: list[Topic] = Field(min_length=1, description="the MQTT topics that feed it")
    properties: dict[str, ObservedProperty] = Field(
        min_length=1, description="observed properties by the name sensors give")
    property_field: str = Field("observed_property",
                                description="the sensor attribute naming its observed property")


class TimeSlices(_Strict):
    """Sensors as they were in slices of fixed length: mean, min, max and count."""

    of: str = Field(description="the sensors collection (one with a stream)")
    length: str = Field("PT15M", description="ISO 8601 duration in minutes or hours, e.g. PT15M")

    @property
    def seconds(self) -> int:
        m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?", self.length)
        return 0 if not m else int(m.group(1) or 0) * 3600 + int(m.group(2) or 0) * 60

    @model_validator(mode="after")
    def _length(self) -> "TimeSlices":
        if not 60 <= self.seconds <= 86400:
            raise ValueError("length must be an ISO 8601 duration from PT1M to PT24H, e.g. PT15M")
        return self


class Editable(_Strict):
    """Who may write the collection through the API (OGC API Features Part 4). Without
    this block a collection is read-only."""

    create: list[str] = Field(default_factory=list, description="roles that may add features")
    change: list[str] = Field(default_factory=list,
                              description="roles that may replace or update features")
    delete: list[str] = Field(default_factory=list, description="roles that may delete features")
    client_ids: bool = Field(False, description="PUT to a new id creates the feature there")
    own: list[str] = Field(default_factory=list, description=(
        "roles that see and change only the features they created themselves (residents' "
        "reports); the other roles above see and change them all"))
    allowed: dict[str, list[Any]] = Field(default_factory=dict, description=(
        "the values a property may take in a write, e.g. {category: [afval, groen]}"))
    author_field: str | None = Field(None, description=(
        "a property the server fills with who wrote the feature (pseudonymous)"))


    def sees_only_own(self, roles) -> bool:
        """Whether a caller with ``roles`` sees only the features they created."""
        others = {*self.create, *self.change, *self.delete} - set(self.own)
        return bool(set(roles) & set(self.own)) and not set(roles) & others


class History(_Strict):
    """How long the versions a change replaces are kept (``asof``, ``.../history``)."""

    retention: str | None = Field(None, pattern=r"^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?$",
                                  description="ISO 8601 duration, e.g. P10Y; none: for ever")
    personal: list[str] = Field(default_factory=list, description=(
        "properties that are personal data: their old values are kept only for "
        "personal_retention, and an erasure removes them from every version"))
    personal_retention: str = Field("P30D", pattern=r"^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?$",
                                    description="how long old personal values are kept")


class Extent(_Strict):
    bbox: list[float] | None = Field(None, description="CRS84 [minx, miny, maxx, maxy]")
    interval: list[datetime | None] | None = Field(
        None, description="[start, end] in RFC 3339, null for an open end")

    @field_validator("bbox")
    @classmethod
    def _bbox(cls, v):
        if v is not None and (len(v) != 4 or v[0] > v[2] or v[1] > v[3]):
            raise ValueError("bbox must be [minx, miny, maxx, maxy] with min <= max")
        return v


class Collection(_Strict):
    """One collection.yml. A person's texts (title, description, keywords, legend) are a
    string in the default language (English) or ``{nl: ..., en: ...}`` (oup.languages)."""

    id: str
    title: Text = Field(description="the collection's name, as people say it")
    description: Text = Field(description="what it holds, where from, how current")
    keywords: list[Text] = Field(default_factory=list, description="words to find it by")
    license: License = Field(description="under which licence it is published")
    owner: Contact = Field(description="who is responsible for the data")
    classification: Classification = Field(Classification.public, description=(
        "who may see it: public (everyone), internal (signed in), restricted (roles)"))
    roles: list[str] = Field(default_factory=list, description="who may see a restricted one")
    synthetic: bool = Field(False, description="true when the values are made up (say so)")
    sources: list[Source] = Field(default_factory=list, description="the files it is "
                                  "imported from (none: it is derived, e.g. counts)")
    id_field: str | None = Field(None, description="attribute whose (unique) value is the "
                                 "feature id, e.g. sensor_id; default: the row number")
    time_field: str | None = Field(None, description="attribute with the time of the thing "
                                   "(ISO 8601): what datetime= filters on")
    title_field: str | None = Field(None, description="attribute that names a feature (pages, "
                                    "search hits, map labels)")
    queryables: list[str] | None = Field(None, description="default: every attribute")
    search: list[str] = Field(default_factory=list, description=(
        "the text attributes free-text search (items?q=, /search) looks in, the one that "
        "weighs most first, e.g. [name, street]; default: none (q= is refused)"))
    extent: Extent = Field(default_factory=Extent, description="derived from the data when empty")
    tiles3d: Tiles3D | None = Field(None, description="publish the city model as 3D Tiles")
    tiles: VectorTiles = Field(default_factory=VectorTiles,
                               description="vector tiles: zoom range and attributes")
    style: MapStyle = Field(default_factory=MapStyle, description="how maps draw it")
    join: Join | None = Field(None, description="take the geometry from another collection")
    counts: Counts | None = Field(None, description="publish counts of another collection's "
                                  "features per area (no sources)")
    disclosure: DisclosureConfig | None = Field(None, description="disclosure control")
    stream: Stream | None = Field(None, description="sensors: the MQTT topics that feed them")
    observations_of: str | None = Field(
        None, description="publish the observations of this sensors collection (no sources)")
    time_slices: TimeSlices | None = Field(
        None, description="publish time slices of a sensors collection (no sources)")
    editable: Editable | None = Field(None, description="who may write it (default: nobody)")
    history: History = Field(default_factory=History,
                             description="how long replaced versions are kept")
    scenarios: list[str] = Field(default_factory=list, description=(
        "roles that may make scenarios of it: named sets of proposed changes layered "
        "over it, never written into it (default: nobody)"))

    @property
    def derived_from(self) -> str | None:
        """The sensors collection a derived (observations, time-slice) collection reads."""
        return self.observations_of or (self.time_slices.of if self.time_slices else None)

    @property
    def imported_after(self) -> set[str]:
        """The collections its import reads (a join's geometries, what it counts)."""
        if self.join:
            return {self.join.collection}
        return {self.counts.of, self.counts.areas} if self.counts else set()

    @model_validator(mode="after")
    def _sources_or_derived(self) -> "Collection":
        kinds = sum((bool(self.sources), bool(self.observations_of), bool(self.time_slices),
                     bool(self.counts)))
        if kinds != 1:
            raise ValueError("give exactly one of sources, observations_of, time_slices or "
                             "counts")
        if self.stream and not self.id_field:
            raise ValueError("a collection with a stream needs id_field (the sensor id)")
        return self

    @model_validator(mode="after")
    def _editable_is_stored(self) -> "Collection":
        e = self.editable
        if e and self.observations_of:
            # observations are created (SensorThings POST), never changed through the API
            if e.change or e.delete or e.own or e.client_ids or e.allowed or e.author_field:
                raise ValueError("editable: observations take only `create` (the roles that "
                                 "may add observations through the SensorThings API)")
            return self
        if e and (self.derived_from or self.join or self.counts):
            raise ValueError("editable: only a collection stored as it is imported can be "
                             "written (not one derived from sensors, joined or counted); the "
                             "observations of sensors take `editable: {create: [...]}`")
        return self

    @model_validator(mode="after")
    def _scenarios_are_stored(self) -> "Collection":
        if self.scenarios and (self.derived_from or self.join or self.counts):
            raise ValueError("scenarios: only a collection stored as it is imported takes "
                             "proposed changes (not one derived from sensors, joined or "
                             "counted)")
        return self

    @model_validator(mode="after")
    def _search_is_stored(self) -> "Collection":
        if self.search and self.derived_from:
            raise ValueError("search: only a collection stored as it is imported has text "
                             "attributes to search (not one derived from sensors)")
        if len(set(self.search)) != len(self.search) or not all(self.search):
            raise ValueError("search: name each attribute once")
        return self

    @model_validator(mode="after")
    def _restricted_needs_roles(self) -> "Collection":
        if self.classification == Classification.restricted and not self.roles:
            raise ValueError("a restricted collection needs roles (who may see it)")
        return self

    @model_validator(mode="after")
    def _coordinates_in_pairs(self) -> "Collection":
        # a table without coordinates and without a join is a collection without geometry
        for src in self.sources:
            if bool(src.x_field) != bool(src.y_field):
                raise ValueError("give both x_field and y_field, or neither")
        return self

    folder: Path = Field(Path("."), exclude=True)

    @field_validator("id")
    @classmethod
    def _id(cls, v):
        if not _ID.match(v):
            raise ValueError("must be lower case letters, digits, '_' or '-', starting with a letter")
        if v.startswith("job-"):  # oup.processes.result_collections: a job's result
            raise ValueError("'job-...' names the result of a job; choose another id")
        return v

    def source_path(self, source: Source) -> Path:
        return (self.folder / source.path).resolve()

    def source_for(self, path: str) -> Source | None:
        return next((s for s in self.sources if s.path == path), None)


class Catalog:
    """The loaded catalogue: collections by id, in a stable order."""

    def __init__(self, collections: list[Collection], root: Path):
        self.root = root
        self.collections = {c.id: c for c in collections}

    def __iter__(self):
        return iter(self.collections.values())

    def __len__(self):
        return len(self.collections)

    def __getitem__(self, cid: str) -> Collection:
        return self.collections[cid]

    @property
    def public(self) -> set[str]:
        """The ids of the collections everyone may see."""
        return {c.id for c in self if c.classification == Classification.public}


def load_collection(file: Path) -> Collection:
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CatalogError(file, "(yaml)", f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise CatalogError(file, "(document)", "must be a mapping of fields")
    raw.setdefault("id", file.parent.name)
    try:
        coll = Collection.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(document)"
        raise CatalogError(file, field, err["msg"]) from None
    if coll.id != file.parent.name:
        raise CatalogError(file, "id", f"must equal the folder name {file.parent.name!r}")
    coll.folder = file.parent.resolve()
    for i, src in enumerate(coll.sources):
        if not coll.source_path(src).exists():
            raise CatalogError(file, f"sources.{i}.path", f"file not found: {src.path}")
    if coll.tiles3d:
        src = coll.tiles3d.source
        if not (coll.folder / src).exists():
            raise CatalogError(file, "tiles3d.source", f"file not found: {src}")
        if not src.lower().endswith((".city.json", ".city.jsonl", ".json", ".tif", ".tiff")):
            raise CatalogError(file, "tiles3d.source", "3D Tiles are made from CityJSON, "
                               "CityJSONSeq or a GeoTIFF DEM")
    return coll


def load_catalog(root: Path) -> Catalog:
    """Load and validate every ``<root>/<id>/collection.yml``."""
    root = Path(root)
    if not root.is_dir():
        raise CatalogError(root, "(folder)", "catalogue folder does not exist")
    files = sorted(root.glob(f"*/{COLLECTION_FILE}"))
    catalog = Catalog([load_collection(f) for f in files], root)
    for coll in catalog:
        if coll.join and coll.join.collection not in catalog.collections:
            raise CatalogError(coll.folder / COLLECTION_FILE, "join.collection",
                               f"no collection {coll.join.collection!r} in the catalogue")
        if coll.join and coll.join.collection == coll.id:
            raise CatalogError(coll.folder / COLLECTION_FILE, "join.collection",
                               "a collection cannot join itself")
        if coll.counts:
            for field in ("of", "areas"):
                other = getattr(coll.counts, field)
                if other not in catalog.collections or other == coll.id:
                    raise CatalogError(coll.folder / COLLECTION_FILE, f"counts.{field}",
                                       f"no other collection {other!r} in the catalogue")
        of = coll.derived_from
        if of is not None and (of not in catalog.collections or not catalog[of].stream):
            field = "observations_of" if coll.observations_of else "time_slices.of"
            raise CatalogError(coll.folder / COLLECTION_FILE, field,
                               f"{of!r} is not a collection with a stream of sensors")
    return catalog
