"""The residents' loop as the README shows it, with curl and keys from `oup keys add`, on
a real server and both stores: a report made, read by its maker only, corrected, its
history listed; a building corrected by a steward; what the public sees."""
from __future__ import annotations

import json
import subprocess

import pytest

from conftest import oup

pytestmark = pytest.mark.slow


def curl(*args: str) -> tuple[int, dict, str]:
    """(status, headers, body) of one curl call."""
    out = subprocess.run(["curl", "-s", "-i", "--max-time", "30", *args], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    head, _, body = out.partition("\n\n")  # (text mode: CRLF read as LF)
    lines = head.splitlines()
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_the_residents_loop_with_curl(server, imported):
    store = imported["OUP_TEST_STORE"]
    key = {who: oup(imported, "keys", "add", f"{who}-{store}", "--role", role).stdout.strip()
           for who, role in (("anna", "resident"), ("bob", "resident"), ("steward", "steward"))}
    items = f"{server}/collections/meldingen/items"
    report = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [4.447, 51.915]},
              "properties": {"category": "afval", "description": "Volle afvalbak"}}
    status, headers, body = curl("-X", "POST", "-H", f"X-API-Key: {key['anna']}",
                                 "-H", "Content-Type: application/geo+json",
                                 "-d", json.dumps(report), items)
    assert status == 201, body
    url = headers["location"]
    assert url.startswith(items + "/") and headers["etag"]
    status, got, body = curl("-H", f"X-API-Key: {key['anna']}", url)
    assert status == 200 and got["etag"] == headers["etag"]
    assert json.loads(body)["properties"]["description"] == "Volle afvalbak"
    assert curl("-H", f"X-API-Key: {key['bob']}", url)[0] == 404
    assert curl(url)[0] == 404
    status, fixed, body = curl("-X", "PATCH", "-H", f"X-API-Key: {key['anna']}",
                               "-H", "Content-Type: application/merge-patch+json",
                               "-d", '{"properties": {"category": "groen"}}', url)
    assert status == 200 and fixed["etag"] != headers["etag"]
    assert json.loads(body)["properties"]["category"] == "groen"
    # a stale ETag: 412, and nothing written
    status, _, body = curl("-X", "PATCH", "-H", f"X-API-Key: {key['anna']}",
                           "-H", f"If-Match: {headers['etag']}",
                           "-H", "Content-Type: application/merge-patch+json",
                           "-d", '{"properties": {"category": "overig"}}', url)
    assert status == 412 and json.loads(body)["status"] == 412
    status, _, body = curl("-H", f"X-API-Key: {key['steward']}", url + "/history")
    assert status == 200
    versions = json.loads(body)["features"]
    assert [v["properties"]["category"] for v in versions] == ["groen", "afval"]
    # a steward corrects a building; a resident may not
    building = f"{server}/collections/buildings/items/1"
    for who, expected in (("anna", 403), ("steward", 200)):
        status, _, body = curl("-X", "PATCH", "-H", f"X-API-Key: {key[who]}",
                               "-H", "Content-Type: application/merge-patch+json",
                               "-d", '{"properties": {"bron_geo": "gecorrigeerd"}}', building)
        assert status == expected, body
    assert json.loads(curl(building)[2])["properties"]["bron_geo"] == "gecorrigeerd"
    # the public: counts per neighbourhood, never a report
    status, _, body = curl(f"{server}/collections/meldingen-per-buurt/items")
    assert status == 200
    assert all(set(f["properties"]) <= {"buurtcode", "buurtnaam", "count"}
               for f in json.loads(body)["features"])
