"""Access classes: every endpoint x every class x every kind of caller. No restricted
byte leaks; invisible means 404; bad credentials mean 401; one audit line per access."""
import json
import time
from pathlib import Path

import jwt
import pytest
import requests

PUBLIC, INTERNAL, RESTRICTED = "leefbaarheid", "internal-figures", "restricted-care"
SECRET_WORDS = {INTERNAL: "internal-figures secret title",
                RESTRICTED: "restricted-care secret title"}  # what a caller cannot guess


def token(creds, key="rsa", roles=(), aud=None, exp=300, iss=None):
    now = int(time.time())
    claims = {"iss": iss or creds["issuer"], "aud": aud or creds["audience"], "sub": "u-123",
              "iat": now, "exp": now + exp, "roles": list(roles)}
    alg, kid = ("RS256", "rsa-1") if key == "rsa" else ("ES256", "ec-1")
    return jwt.encode(claims, creds[key], algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
def callers(credentials):
    c = credentials
    return {
        "anonymous": ({}, {PUBLIC}),
        "malformed token": ({"Authorization": "Bearer not.a.jwt"}, None),
        "expired token": ({"Authorization": f"Bearer {token(c, exp=-60)}"}, None),
        "wrong audience": ({"Authorization": f"Bearer {token(c, aud='someone-else')}"}, None),
        "wrong issuer": ({"Authorization": f"Bearer {token(c, iss='https://evil.example')}"},
                         None),
        "unknown api key": ({"X-API-Key": "guess"}, None),
        "wrong role": ({"Authorization": f"Bearer {token(c, roles=['planner'])}"},
                       {PUBLIC, INTERNAL}),
        "right role RS256": ({"Authorization":
                              f"Bearer {token(c, roles=['youth-care-analyst'])}"},
                             {PUBLIC, INTERNAL, RESTRICTED}),
        "right role ES256": ({"Authorization":
                              f"Bearer {token(c, key='ec', roles=['youth-care-analyst'])}"},
                             {PUBLIC, INTERNAL, RESTRICTED}),
        "api key": ({"X-API-Key": c["api_key"]}, {PUBLIC, INTERNAL, RESTRICTED}),
    }


def endpoints(cid):
    return [f"/collections/{cid}?f=json", f"/collections/{cid}/items?f=json",
            f"/collections/{cid}/items/1?f=json", f"/collections/{cid}/queryables?f=json",
            f"/collections/{cid}/schema?f=json", f"/collections/{cid}?f=html",
            f"/collections/{cid}/items?f=html", f"/collections/{cid}/3dtiles/tileset.json"]


LISTINGS = ["/collections?f=json", "/collections?f=html", "/openapi.json", "/api",
            "/collections/catalog/items?f=json", "/?f=json", "/conformance?f=json"]


@pytest.mark.parametrize("who", ["anonymous", "malformed token", "expired token",
                                 "wrong audience", "wrong issuer", "unknown api key",
                                 "wrong role", "right role RS256", "right role ES256", "api key"])
def test_the_access_matrix(server, callers, who):
    headers, sees = callers[who]
    for path in LISTINGS + [p for c in (PUBLIC, INTERNAL, RESTRICTED) for p in endpoints(c)]:
        r = requests.get(server + path, headers=headers)
        if sees is None:  # bad credentials: 401 everywhere, and a hint how to authenticate
            assert r.status_code == 401, (who, path)
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert r.headers["Content-Type"] == "application/problem+json"
            continue
        cid = next((c for c in (PUBLIC, INTERNAL, RESTRICTED)
                    if path.startswith(f"/collections/{c}")), None)
        if cid and cid not in sees:
            assert r.status_code == 404, (who, path)
        elif cid and "3dtiles" in path:
            assert r.status_code == 404  # these have no tiles, but they exist
        elif cid:
            assert r.status_code == 200, (who, path, r.text[:200])
        else:
            assert r.status_code == 200, (who, path)
        for hidden in set(SECRET_WORDS) - sees:  # not a byte of what they may not see
            assert SECRET_WORDS[hidden] not in r.text, (who, path, hidden)
        if cid and cid != PUBLIC and r.status_code == 200:
            assert r.headers["Cache-Control"] == "no-store"


def test_listings_show_what_each_caller_may_see(server, callers):
    for who in ("anonymous", "wrong role", "api key"):
        headers, sees = callers[who]
        ids = {c["id"] for c in requests.get(f"{server}/collections?f=json",
                                             headers=headers).json()["collections"]}
        assert ids & {PUBLIC, INTERNAL, RESTRICTED} == sees
        paths = requests.get(f"{server}/openapi.json", headers=headers).json()["paths"]
        assert {c for c in (PUBLIC, INTERNAL, RESTRICTED)
                if f"/collections/{c}/items" in paths} == sees
        recs = requests.get(f"{server}/collections/catalog/items?f=json&limit=100",
                            headers=headers).json()["features"]
        assert {r["id"] for r in recs} & {PUBLIC, INTERNAL, RESTRICTED} == sees


def test_one_audit_line_per_access_to_non_public_data(server, imported, callers):
    log = Path(imported["OUP_DATA_DIR"]) / "audit.log"

    def lines():
        return log.read_text().splitlines() if log.exists() else []

    headers, _ = callers["api key"]
    before = len(lines())
    requests.get(f"{server}/collections/{PUBLIC}/items", headers=headers)
    assert len(lines()) == before  # public: nothing to audit
    requests.get(f"{server}/collections/{RESTRICTED}/items",
                 headers={**headers, "X-Request-ID": "req-audit-1"})
    after = lines()
    assert len(after) == before + 1
    entry = json.loads(after[-1])
    assert entry == {**entry, "who": "key:etl-service", "collection": RESTRICTED,
                     "result": 200, "request_id": "req-audit-1"}
    assert set(entry) == {"time", "request_id", "who", "collection", "action", "result"}
    # a refused look is audited too, and no credential ever is
    anon, _ = callers["anonymous"]
    requests.get(f"{server}/collections/{INTERNAL}/items/1", headers=anon)
    last = json.loads(lines()[-1])
    assert last["who"] == "anonymous" and last["result"] == 404
    text = log.read_text()
    assert headers["X-API-Key"] not in text and "Bearer" not in text and "u-123" not in text


def test_security_headers(server):
    r = requests.get(f"{server}/collections", headers={"X-Forwarded-Proto": "https"})
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Strict-Transport-Security" not in requests.get(f"{server}/collections").headers


def test_admin_api_stays_off(server):
    # pygeoapi mounts its admin API (GET, PUT, PATCH /admin/config; /admin/config/resources)
    # only with `admin: true` (config/pygeoapi.yml keeps it false), so there is no /admin
    # resource and the right answer is 404. GET is the request that tells: the admin API
    # answers it with the whole configuration (200); a POST is refused either way.
    r = requests.get(f"{server}/admin/config")
    assert r.status_code == 404, r.text


def test_a_post_to_the_absent_admin_api_is_404(server):
    # No /admin resource, so 404 for every method: a 405 says the resource exists but not
    # with this method, and must list its methods in Allow (RFC 9110, 15.5.6).
    r = requests.post(f"{server}/admin/config", json={"server": {}})
    assert r.status_code == 404, r.text


def test_the_demo_restricted_collection_with_a_key_from_oup_keys(server, imported, credentials):
    """The demo's youth-care collection: anonymous, a key made by `oup keys add`, a bad key
    and an expired token get 404, 200, 401, 401, and the audit log has each of the four."""
    from conftest import oup

    cid, name = "jeugdzorg", f"demo-analyst-{imported['OUP_TEST_STORE']}"
    made = oup(imported, "keys", "add", name, "--role", "youth-care-analyst")
    key = made.stdout.strip()
    keys_file = Path(imported["OUP_API_KEYS_FILE"]).read_text()
    assert key.startswith("oup_") and key not in keys_file  # only its hash is kept
    assert name in oup(imported, "keys", "list").stdout
    expired = f"Bearer {token(credentials, roles=['youth-care-analyst'], exp=-60)}"
    calls = {"anonymous": ({}, 404), "key": ({"X-API-Key": key}, 200),
             "bad key": ({"X-API-Key": key[:-2] + "xx"}, 401),
             "expired token": ({"Authorization": expired}, 401)}
    for who, (headers, status) in calls.items():
        r = requests.get(f"{server}/collections/{cid}/items",
                         headers={**headers, "X-Request-ID": f"demo-{name}-{who}"})
        assert r.status_code == status, (who, r.text[:200])
        if status == 200:  # published after its disclosure control
            by_code = {f["properties"]["buurtcode"]: f["properties"] for f in r.json()["features"]}
            assert len(by_code) == 6
            assert by_code["BU05990304"]["trajecten_per_1000"] is None  # under 100 young people
            assert by_code["BU05990303"]["met_verblijf"] is None  # a count under 5
            assert all(p["jongeren"] % 5 == 0 for p in by_code.values())
    audit = [json.loads(line) for line in
             (Path(imported["OUP_DATA_DIR"]) / "audit.log").read_text().splitlines()]
    logged = {e["request_id"]: e for e in audit if e["request_id"].startswith(f"demo-{name}-")}
    assert {rid: e["result"] for rid, e in logged.items()} == \
        {f"demo-{name}-{who}": status for who, (_, status) in calls.items()}
    assert logged[f"demo-{name}-key"]["who"] == f"key:{name}"
    assert all(e["collection"] == cid for e in logged.values())
    # revoked: the running server refuses the key from the next request on
    oup(imported, "keys", "revoke", name)
    r = requests.get(f"{server}/collections/{cid}/items", headers={"X-API-Key": key})
    assert r.status_code == 401
