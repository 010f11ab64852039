"""The stores' free-text index (``oup.store.text``) on both stores: ranked hits, kept
right by every kind of write (create, update, delete, erasure), and the refusals."""
from datetime import datetime, timezone

import pytest
import shapely

from oup.catalog import load_collection
from oup.catalog.importers import ImportError_, import_collection
from oup.store.base import Change, Feature, Field, InvalidQuery, Query
from oup.store.text import NotIndexed
from test_import import each_store  # noqa: F401  (the fixture: one store of each kind)

PT = shapely.Point(4.45, 51.91)


def _names(store, q: str) -> list[str]:
    page = store.query("notes", Query(text=q, limit=50))
    assert page.ranks == sorted(page.ranks, reverse=True)
    return [f["properties"]["name"] for f in page.features]


def test_the_index_ranks_and_follows_every_write(each_store):
    s = each_store
    fields = [Field("name", "string"), Field("note", "string"), Field("n", "integer")]
    s.write_collection("notes", "EPSG:4326", fields, [
        Feature(PT, PT, {"name": "Bospolder", "note": "Spangense kade", "n": 1}),
        Feature(PT, PT, {"name": "Spangen", "note": "plein", "n": 2}),
        Feature(PT, PT, {"name": "Tussendijken", "note": "haven", "n": 3})],
        search=["name", "note"])
    assert _names(s, "spangen") == ["Spangen", "Bospolder"]  # the name weighs most
    assert _names(s, "kade SPANG") == ["Bospolder"]  # every word, each a prefix
    assert _names(s, "nergens") == []
    s.write_feature("notes", Change("created", None, Feature(PT, PT, {"name": "Spangen-Noord"})))
    s.write_feature("notes", Change("updated", 1, Feature(None, None, {"note": "dijk"})))
    assert sorted(_names(s, "spangen")) == ["Spangen", "Spangen-Noord"]
    s.write_feature("notes", Change("deleted", 2, None))
    assert _names(s, "spangen") == ["Spangen-Noord"]
    s.erase("notes", ["name"], fid=4)  # personal data blanked: no longer found by it
    assert _names(s, "spangen") == []
    with pytest.raises(InvalidQuery, match="asof"):
        s.query("notes", Query(text="haven", asof=datetime.now(timezone.utc)))


def test_a_collection_without_text_attributes_has_no_index(each_store):
    each_store.write_collection("plain", "EPSG:4326", [Field("name", "string")],
                                [Feature(PT, PT, {"name": "Spangen"})])
    with pytest.raises(NotIndexed, match="oup import plain"):
        each_store.query("plain", Query(text="spangen"))


@pytest.mark.parametrize("search, message", [("[nothere]", "'nothere' is in no source"),
                                              ("[height]", "'height' is number, not text")])
def test_the_import_refuses_a_search_attribute_the_data_has_not(tmp_path, search, message):
    from oup.store.gpkg import GeoPackageStore

    folder = tmp_path / "things"
    folder.mkdir()
    (folder / "things.geojson").write_text('{"type": "FeatureCollection", "features": [{"type":'
                                           '"Feature", "properties": {"name": "a", "height": 2.5}'
                                           ', "geometry": {"type": "Point", "coordinates": '
                                           '[4.45, 51.91]}}]}')
    (folder / "collection.yml").write_text("title: T\ndescription: D\nlicense: {name: CC0}\n"
                                           "owner: {name: Me}\nsources: [{path: things.geojson}]"
                                           f"\nsearch: {search}\n")
    with pytest.raises(ImportError_, match=message):
        import_collection(load_collection(folder / "collection.yml"),
                          GeoPackageStore(tmp_path / "t.gpkg"))
