"""Group commit on the GeoPackage store (``oup/store/gpkg_commit.py``): writes that wait
in line while one is written commit with it in one transaction; a write of the group
that fails is undone alone; each write returns only once its group is committed."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from oup.store.base import FID, Change, Feature, StaleVersion
from oup.store.gpkg import GeoPackageStore
from test_writes_store import _feature, _block, _import


def _queued(store, n: int) -> None:
    deadline = time.monotonic() + 10
    while store._group_commit()._waiting < n:  # the writers are in line
        assert time.monotonic() < deadline, "the writers did not queue"
        time.sleep(0.01)


def test_writes_in_line_commit_together_and_a_failed_one_alone(tmp_path):
    store = GeoPackageStore(tmp_path / "group.gpkg")
    _import(store)
    etag_one = store.etag("blocks", 1)
    statements: list[str] = []
    writes = store._group_commit()
    held, release = threading.Event(), threading.Event()

    def hold():  # a write that keeps the turn until the others are in line
        with store._writing("blocks"):
            statements.clear()
            writes._connection().set_trace_callback(statements.append)
            held.set()
            release.wait(10)

    outcomes: dict[str, object] = {}
    seen_after: dict[str, object] = {}

    def write(name: str, change: Change) -> None:
        try:
            w = store.write_feature("blocks", change)
            outcomes[name] = w
            # answered after the commit: another connection already reads it
            con = sqlite3.connect(store.path)
            seen_after[name] = con.execute(f'SELECT "name" FROM "blocks" WHERE {FID} = ?',
                                           (w.fid,)).fetchone()
            con.close()
        except Exception as exc:  # noqa: BLE001 (the outcome is the test's)
            outcomes[name] = exc

    changes = {f"u{i}": Change("updated", 2, Feature(None, None, {"name": f"u{i}"}))
               for i in range(4)}
    changes["stale"] = Change("updated", 1, Feature(None, None, {"name": "lost"}),
                              expected=etag_one + "x")
    changes["new"] = Change("created", None, _feature(_block(0.01), name="new"))
    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    threads = [threading.Thread(target=write, args=item) for item in changes.items()]
    for t in threads:
        t.start()
    _queued(store, len(threads))
    release.set()
    for t in [holder, *threads]:
        t.join(30)
    writes._connection().set_trace_callback(None)

    assert isinstance(outcomes.pop("stale"), StaleVersion)
    assert all(not isinstance(o, Exception) for o in outcomes.values()), outcomes
    # one transaction for the seven: begun by the holder, committed by the last in line
    assert statements.count("COMMIT") == 1
    assert not [s for s in statements if s.startswith("BEGIN")]
    assert statements.count("ROLLBACK TO oup_write") == 1
    # each read, right after its write returned, the group's last version (not "two")
    last = store.get("blocks", 2)["properties"]["name"]
    assert last in changes
    assert seen_after.pop("new") == ("new",)
    assert set(seen_after.values()) == {(last,)}
    assert store.get("blocks", 1)["properties"]["name"] == "one"  # the stale write undone
    assert store.etag("blocks", 1) == etag_one
    assert len(store.history("blocks", 2)) == 1 + 4  # every update a version of its own
    assert store.extent("blocks")["count"] == 3


def test_a_write_alone_commits_at_once(tmp_path):
    store = GeoPackageStore(tmp_path / "alone.gpkg")
    _import(store)
    statements: list[str] = []
    store._group_commit()._connection().set_trace_callback(statements.append)
    store.write_feature("blocks", Change("updated", 1, Feature(None, None, {"name": "a"})))
    with pytest.raises(StaleVersion):
        store.write_feature("blocks", Change("updated", 1, Feature(None, None, {"name": "b"}),
                                             expected="no"))
    assert statements.count("BEGIN IMMEDIATE") == 2 and statements.count("COMMIT") == 2
    assert store.get("blocks", 1)["properties"]["name"] == "a"


def test_a_write_waits_for_another_writer_of_the_file_then_gives_up(tmp_path, monkeypatch):
    """Another connection (another process, QGIS) holding the file: a write waits for
    it, and past ``BUSY_S`` is a StoreBusy, nothing written."""
    from oup.store import gpkg_commit
    from oup.store.base import StoreBusy

    store = GeoPackageStore(tmp_path / "other.gpkg")
    _import(store)
    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, lambda: other.execute("COMMIT")).start()
    w = store.write_feature("blocks", Change("updated", 1, Feature(None, None, {"name": "a"})))
    assert w.after["properties"]["name"] == "a"
    monkeypatch.setattr(gpkg_commit, "BUSY_S", 0.2)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreBusy):
        store.write_feature("blocks", Change("updated", 1, Feature(None, None, {"name": "b"})))
    other.execute("COMMIT")
    other.close()
    assert store.get("blocks", 1)["properties"]["name"] == "a"
    store.write_feature("blocks", Change("updated", 1, Feature(None, None, {"name": "c"})))
    assert len(store.history("blocks", 1)) == 3
