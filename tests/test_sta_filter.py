"""``$filter`` against a brute-force evaluator, both stores: random expressions
(comparison, logic, arithmetic, string, date and math functions, paths to the datastream,
its thing and observed property, null) over observations this test creates, each answered
by the server's SQL and by an evaluation in Python of the same tree over what was sent."""
from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import pytest
import requests
import yaml

from conftest import ROOT, SENSORS
from test_writes import _token

pytestmark = pytest.mark.slow
PROPS = yaml.safe_load((ROOT / "collections" / "sensors" / "collection.yml").read_text())[
    "stream"]["properties"]
NAMES = {f["properties"]["sensor_id"]: f["properties"] for f in SENSORS}
CHOSEN = ["aq-statenweg-no2", "aq-schiedamsevest-pm10", "0004A30B001F5E21:water_level"]
START = datetime(2036, 2, 27, 22, tzinfo=timezone.utc)
# this test's readings only (other tests write to the same sensors, at other times)
WINDOW = (f"phenomenonTime ge {START:%Y-%m-%dT%H:%M:%SZ} and "
          f"phenomenonTime lt {START + timedelta(days=30):%Y-%m-%dT%H:%M:%SZ}")


def _readings(rng: random.Random) -> list[dict]:
    out = []
    for i in range(36):
        sid = CHOSEN[i % 3]
        low = -40 if "water" in sid else 0
        t = START + timedelta(minutes=rng.randrange(0, 4 * 24 * 60), seconds=rng.randrange(60))
        result = rng.choice([0, 2.5, -2.5, 7, 10, 33.25, 64, 99.5, 120]) if low or \
            rng.random() < 0.5 else rng.choice([0, 2.5, 7, 10, 33.25, 64, 99.5, 120])
        doc = {"sid": sid, "t": t, "result": float(result)}
        if rng.random() < 0.4:
            doc["rt"] = t + timedelta(seconds=rng.randrange(1, 3600))
        out.append(doc)
    return out


# -- the evaluator: SQL's three-valued logic, NULL as None ---------------------------------
def evaluate(node, row):
    tag = node[0]
    if tag == "lit":
        return node[1]
    if tag == "path":
        return row[node[1]]
    if tag == "not":
        v = evaluate(node[1], row)
        return None if v is None else not v
    if tag == "neg":
        v = evaluate(node[1], row)
        return None if v is None else -v
    if tag == "op":
        op, a, b = node[1], evaluate(node[2], row), evaluate(node[3], row)
        if op == "and":
            return False if a is False or b is False else (None if None in (a, b) else True)
        if op == "or":
            return True if a is True or b is True else (None if None in (a, b) else False)
        if a is None or b is None:
            return None
        return {"eq": lambda: a == b, "ne": lambda: a != b, "gt": lambda: a > b,
                "ge": lambda: a >= b, "lt": lambda: a < b, "le": lambda: a <= b,
                "add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b,
                "div": lambda: None if b == 0 else a / b,
                "mod": lambda: None if b == 0 else a - b * math.trunc(a / b)}[op]()
    if tag == "isnull":
        return evaluate(node[1], row) is None
    name, args = node[1], [evaluate(a, row) for a in node[2]]
    if any(a is None for a in args):
        return None
    if name == "year":
        return args[0].year
    if name in ("month", "day", "hour", "minute", "second"):
        return getattr(args[0], name)
    if name == "round":
        return math.copysign(math.floor(abs(args[0]) + 0.5), args[0])
    if name == "floor":
        return math.floor(args[0])
    if name == "ceiling":
        return math.ceil(args[0])
    a = args[0]
    return {"length": lambda: len(a), "tolower": lambda: a.lower(),
            "toupper": lambda: a.upper(), "trim": lambda: a.strip(" "),
            "concat": lambda: a + args[1], "indexof": lambda: a.find(args[1]),
            "startswith": lambda: a.startswith(args[1]), "endswith": lambda: a.endswith(args[1]),
            "substringof": lambda: a in args[1],
            "substring": lambda: a[args[1]:] if len(args) == 2 else a[args[1]:args[1] + args[2]],
            }[name]()


# -- random expressions, as trees and as text ---------------------------------------------
STRINGS = ["Datastream/Thing/name", "Datastream/ObservedProperty/name",
           "Datastream/unitOfMeasurement/symbol", "FeatureOfInterest/name", "Datastream/name"]
WORDS = ["Statenweg", "NO2", "ug/m3", "cm", "Nitrogen dioxide", "Maas", "st", "", "a"]


def text(node) -> str:
    tag = node[0]
    if tag == "lit":
        v = node[1]
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        if isinstance(v, datetime):
            return v.strftime("%Y-%m-%dT%H:%M:%SZ")
        return repr(v)
    if tag == "path":
        return node[1]
    if tag == "not":
        return f"not ({text(node[1])})"
    if tag == "neg":
        return f"-({text(node[1])})"
    if tag == "op":
        return f"({text(node[2])} {node[1]} {text(node[3])})"
    if tag == "isnull":
        return f"({text(node[1])} eq null)"
    return f"{node[1]}({', '.join(text(a) for a in node[2])})"


def number(rng, depth):
    r = rng.random()
    if depth <= 0 or r < 0.3:
        return rng.choice([("path", "result"), ("lit", rng.choice([0, 1, 2, 3, 7, 10, 64]))])
    if r < 0.55:
        return ("op", rng.choice(["add", "sub", "mul", "div", "mod"]), number(rng, depth - 1),
                number(rng, depth - 1))
    if r < 0.7:
        return ("call", rng.choice(["year", "month", "day", "hour", "minute", "second"]),
                (("path", "phenomenonTime"),))
    if r < 0.8:
        return ("call", rng.choice(["round", "floor", "ceiling"]), (("path", "result"),))
    if r < 0.9:
        return ("call", "length", (string(rng, depth - 1),))
    return ("call", "indexof", (string(rng, depth - 1), ("lit", rng.choice(WORDS[:-2]))))


def string(rng, depth):
    r = rng.random()
    if depth <= 0 or r < 0.5:
        return ("path", rng.choice(STRINGS)) if rng.random() < 0.8 else \
            ("lit", rng.choice(WORDS))
    if r < 0.7:
        return ("call", rng.choice(["tolower", "toupper", "trim"]), (string(rng, depth - 1),))
    if r < 0.8:
        return ("call", "concat", (string(rng, depth - 1), string(rng, depth - 1)))
    args = (string(rng, depth - 1), ("lit", rng.randrange(0, 6)))
    return ("call", "substring", args + ((("lit", rng.randrange(0, 6)),) if r < 0.9 else ()))


def condition(rng, depth):
    r = rng.random()
    if depth > 0 and r < 0.25:
        return ("op", rng.choice(["and", "or"]), condition(rng, depth - 1),
                condition(rng, depth - 1))
    if depth > 0 and r < 0.3:
        return ("not", condition(rng, depth - 1))
    if r < 0.55:
        return ("op", rng.choice(["eq", "ne", "gt", "ge", "lt", "le"]), number(rng, 2),
                number(rng, 2))
    if r < 0.65:
        t = START + timedelta(minutes=rng.randrange(0, 4 * 24 * 60))
        return ("op", rng.choice(["gt", "ge", "lt", "le", "eq", "ne"]),
                ("path", rng.choice(["phenomenonTime", "resultTime"])), ("lit", t))
    if r < 0.72:
        return ("isnull", ("path", "resultTime")) if rng.random() < 0.5 else \
            ("not", ("isnull", ("path", "resultTime")))
    if r < 0.85:
        return ("op", rng.choice(["eq", "ne"]), string(rng, 2), string(rng, 2))
    return ("call", rng.choice(["startswith", "endswith", "substringof"]),
            (string(rng, 1), string(rng, 1)))


def test_random_filters_match_brute_force(server, credentials, env):
    rng = random.Random(2036)
    readings = _readings(rng)
    writer = {"Authorization": "Bearer " + _token(credentials, "w-2", ["sensor-writer"])}
    body = [{"Datastream": {"@iot.id": sid}, "components": ["phenomenonTime", "result",
                                                          "resultTime"],
             "dataArray": [[r["t"].strftime("%Y-%m-%dT%H:%M:%SZ"), r["result"],
                            r["rt"].strftime("%Y-%m-%dT%H:%M:%SZ") if "rt" in r else None]
                           for r in readings if r["sid"] == sid]} for sid in CHOSEN]
    resp = requests.post(f"{server}/sta/v1.1/CreateObservations", json=body, headers=writer,
                         timeout=60)
    assert resp.status_code == 201, resp.text
    links = iter(resp.json())
    rows = {}
    for sid in CHOSEN:
        for r in readings:
            if r["sid"] == sid:
                link = next(links)
                assert link != "error"
                p = NAMES[sid]
                prop = PROPS[p["observed_property"]]
                rows[int(link[link.rindex("(") + 1:-1])] = {
                    "result": r["result"], "phenomenonTime": r["t"], "resultTime": r.get("rt"),
                    "Datastream/Thing/name": p["name"], "FeatureOfInterest/name": p["name"],
                    # (a title in two languages: SensorThings answers in the default one)
                    "Datastream/ObservedProperty/name": prop["title"]["en"]
                    if isinstance(prop["title"], dict) else prop["title"],
                    "Datastream/unitOfMeasurement/symbol": prop["unit"],
                    "Datastream/name": f"{p['name']} {p['observed_property']}"}
    assert len(rows) == len(readings)
    checked = 0
    for _ in range(120):
        node = condition(rng, 3)
        expected = {i for i, row in rows.items() if evaluate(node, row) is True}
        r = requests.get(f"{server}/sta/v1.1/Observations", params={
            "$filter": f"{WINDOW} and ({text(node)})", "$select": "id", "$top": "1000"},
            timeout=60)
        assert r.status_code == 200, (text(node), r.text)
        got = {v["@iot.id"] for v in r.json()["value"]}
        assert got == expected, text(node)
        checked += bool(expected) and expected != set(rows)
    assert checked > 20  # the expressions tell rows apart, not all true or all false
