"""API conventions: landing page, conformance, OpenAPI, headers, HTML, Records,
health and metrics; bad input answered with problem documents naming the parameter."""
import pytest
import requests

OPENAPI = "application/vnd.oai.openapi+json;version=3.0"


def test_landing_page_links(server):
    r = requests.get(server + "/", headers={"Accept": "application/json"})
    links = r.json()["links"]
    rels = {link["rel"]: link for link in links}
    # two service descriptions: the OpenAPI one (requests), the AsyncAPI one (events)
    described = {link["type"]: link["href"] for link in links if link["rel"] == "service-desc"}
    assert set(described) >= {OPENAPI, "application/asyncapi+json"}
    assert requests.get(described[OPENAPI]).json()["openapi"].startswith("3.0")
    assert rels["data"]["href"].endswith("/collections")
    assert r.headers["API-Version"] == "1.0.0"
    assert r.headers["Access-Control-Allow-Origin"] == "*"


def test_openapi_at_both_addresses(server):
    for path in ("/openapi.json", "/api"):
        r = requests.get(server + path)
        assert r.headers["Content-Type"] == OPENAPI
        doc = r.json()
        assert doc["openapi"].startswith("3.0")
        assert "/collections/buildings/items" in doc["paths"]
        assert "/health" in doc["paths"]


def test_conformance_claims_only_what_works(server):
    classes = requests.get(server + "/conformance?f=json").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in classes
    assert "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json" in classes
    # transactions (Part 4) only because the demo makes collections editable; never the
    # classes pygeoapi claims by default that OUP does not offer
    assert "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete" \
        in classes
    # processes (config/processes.yml): what OUP's jobs do, not pygeoapi's (no callbacks)
    assert {c.rsplit("/", 1)[1] for c in classes if "ogcapi-processes" in c} == {
        "core", "ogc-process-description", "json", "oas30", "job-list", "dismiss"}


def test_collection_document(server):
    doc = requests.get(server + "/collections/buildings?f=json").json()
    assert doc["itemType"] == "feature"
    items = [link for link in doc["links"] if link["rel"] == "items"
             and link["type"] == "application/geo+json"]
    assert items and "?" not in items[0]["href"]
    lic = [link for link in doc["links"] if link["rel"] == "license"]
    assert lic and "Rotterdam" in lic[0]["title"]


def test_html_pages(server):
    r = requests.get(server + "/collections/buildings/items?f=html&limit=2")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "Buildings of Delfshaven" in r.text


def test_records_catalogue_carries_owner_licence_classification(server):
    recs = requests.get(server + "/collections/catalog/items?f=json").json()["features"]
    by_id = {r["id"]: r["properties"] for r in recs}
    assert by_id["buildings"]["owner"] == "Gemeente Rotterdam"
    assert by_id["buildings"]["classification"] == "public"
    assert "Rotterdam" in by_id["buildings"]["license"]
    assert by_id["neighbourhoods"]["synthetic"] is True


def _count(text: str, route: str, status: str) -> int:
    for line in text.splitlines():
        if line.startswith(f'oup_http_requests_total{{route="{route}",status="{status}"}}'):
            return int(line.rsplit(" ", 1)[1])
    return 0


def test_health_and_metrics(server):
    h = requests.get(server + "/health")
    assert h.status_code == 200 and h.json()["status"] == "ok"
    route = "/collections/<path:collection_id>/items/<path:item_id>"
    before = _count(requests.get(server + "/metrics").text, route, "200")
    for i in range(1, 21):  # spread over both workers by the kernel
        requests.get(f"{server}/collections/buildings/items/{i}")
    m = requests.get(server + "/metrics")
    assert m.headers["Content-Type"].startswith("text/plain")
    # the totals are the service's, whichever worker answers
    assert _count(m.text, route, "200") == before + 20
    assert "# TYPE oup_http_request_seconds histogram" in m.text


def test_cors_preflight(server):
    r = requests.options(server + "/collections/buildings/items",
                         headers={"Origin": "http://viewer.example",
                                  "Access-Control-Request-Method": "GET"})
    assert r.status_code == 204
    assert "GET" in r.headers["Access-Control-Allow-Methods"]


def test_paging_links_and_number_matched(server):
    r = requests.get(server + "/collections/buildings/items?limit=100&offset=800").json()
    assert r["numberMatched"] == 853 and r["numberReturned"] == 53
    rels = {link["rel"] for link in r["links"]}
    assert "prev" in rels and "next" not in rels


ITEMS = "/collections/buildings/items"


@pytest.mark.parametrize("query, status, parameter", [
    ("bbox=1,2,3", 400, "bbox"),
    ("bbox=a,b,c,d", 400, "bbox"),
    ("bbox=5,52,4,51", 400, "bbox"),
    ("bbox=1,2,3,4&bbox-crs=EPSG:9999", 400, "bbox-crs"),
    ("crs=http://www.opengis.net/def/crs/EPSG/0/9999", 400, "crs"),
    ("datetime=yesterday", 400, "datetime"),
    ("datetime=2009-01-01T00:00:00Z/2008-01-01T00:00:00Z", 400, "datetime"),
    ("datetime=../..", 400, "datetime"),
    ("limit=0", 400, "limit"),
    ("limit=-5", 400, "limit"),
    ("limit=abc", 400, "limit"),
    ("limit=100001", 400, "limit"),
    ("offset=-1", 400, "offset"),
    ("colour=red", 400, "colour"),
    ("sortby=colour", 400, "sortby"),
    ("properties=colour", 400, "properties"),
    ("filter=height >", 400, "filter"),
    ("filter=colour = 'red'", 400, None),
    ("filter=height = 'tall'", 400, None),
    ("filter-lang=cql3&filter=height>1", 400, "filter-lang"),
    ("filter-crs=EPSG:1&filter=height>1", 400, "filter-crs"),
    ("height=tall", 400, None),
    ("skipGeometry=maybe", 400, "skipGeometry"),
])
def test_bad_input_gets_a_problem_document(server, query, status, parameter):
    r = requests.get(f"{server}{ITEMS}?{query}")
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if parameter:
        assert body["parameter"] == parameter
    else:
        assert any(w in body["detail"] for w in ("colour", "height"))


@pytest.mark.parametrize("path", ["/collections/nope", "/collections/nope/items",
                                  "/collections/buildings/items/99999",
                                  "/collections/buildings/items/abc", "/no/such/path"])
def test_unknown_things_are_404_problems(server, path):
    r = requests.get(server + path)
    assert r.status_code == 404
    assert r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["status"] == 404


def test_sorting_and_property_selection(server):
    r = requests.get(server + ITEMS, params={"sortby": "-height", "limit": 5,
                                             "properties": "height,status",
                                             "skipGeometry": "true"}).json()
    heights = [f["properties"]["height"] for f in r["features"]]
    assert heights == sorted(heights, reverse=True)
    assert set(r["features"][0]["properties"]) == {"height", "status"}
    assert r["features"][0]["geometry"] is None


def test_property_equality_filter(server):
    r = requests.get(server + ITEMS, params={"TerrainHeight": "2.53", "limit": 100}).json()
    assert r["numberMatched"] >= 1
    assert all(f["properties"]["TerrainHeight"] == 2.53 for f in r["features"])


@pytest.mark.parametrize("query", ["a_45_64=32278395280038500244672145877308014592",
                                   "filter=a_45_64 > 32278395280038500244672145877308014592"])
def test_huge_integers_are_a_400_not_a_500(server, query):
    r = requests.get(f"{server}/collections/kerncijfers/items?{query}")
    assert r.status_code == 400 and "64-bit" in r.json()["detail"]


def test_metrics_survive_concurrent_requests(server):
    """Threads of one worker share its counters: a burst of parallel requests, no 5xx."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda i: requests.get(
            f"{server}/collections/buildings/items/{i % 50 + 1}").status_code, range(200)))
    assert codes == [200] * 200


def test_metrics_folders_of_ended_servers_are_removed(tmp_path):
    """Each server run keeps its snapshots in a folder of its own (master pid and start
    time); a new run removes the folders of runs that have ended, never a live one's."""
    import os
    import subprocess
    import sys

    from oup.http.metrics import process_run, server_folder

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended_run = process_run(ended.pid)
    ended.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    live_run = process_run(live.pid)
    try:
        for name in (ended_run, str(ended.pid), live_run, "notes"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "1.json").write_text("{}")
        mine = server_folder(tmp_path, os.getpid())
        assert mine.name == process_run(os.getpid())
        # the ended run's folder and an old-style one (pid alone) are gone
        assert sorted(d.name for d in tmp_path.iterdir()) == sorted([live_run, "notes"])
    finally:
        live.kill()
        live.wait()
    server_folder(tmp_path, os.getpid())
    assert sorted(d.name for d in tmp_path.iterdir()) == ["notes"]  # its run ended too
