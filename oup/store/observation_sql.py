"""What the two observation stores (GeoPackage, PostGIS) share: the dead letters, the
counters, the sensors' latest values after a re-import, and the reads. SQL is written
once, with ``?`` placeholders; a store supplies ``execute``, ``_executemany`` and
``_transaction`` (and how it writes a batch, which is where the two really differ).
"""
from __future__ import annotations

from oup.events import ChangeEvent, observations_event
from oup.sensors.observations import DeadLetter, Observation, SensorHome, iso_us
from oup.store.base import COUNTERS, BatchResult, SqlTables
from oup.store.cql import quote

_DEAD_LETTER_KEYS = ("id", "received_at", "topic", "reason", "payload", "payload_size",
                     "replayed")
_COUNT = ", ".join(f"{c} = oup_ingest_counters.{c} + excluded.{c}" for c in COUNTERS)


def tally(res: BatchResult, latest: dict[str, list], o: Observation, corrected: bool,
          oid: int | None = None) -> None:
    """Count one observation written (new or a correction) and keep, per sensor, its
    latest (time, value), how many were stored and corrected, and the new ones (their id,
    for the SensorThings notifications): [t, value, new, fixed, [(id, observation)]]."""
    if corrected:
        res.observations_corrected += 1
    else:
        res.observations_stored += 1
    seen = latest.get(o.sensor_id)
    if seen is None:
        seen = latest[o.sensor_id] = [o.phenomenon_time, o.result, 0, 0, []]
    elif o.phenomenon_time >= seen[0]:
        seen[0], seen[1] = o.phenomenon_time, o.result
    seen[3 if corrected else 2] += 1
    if not corrected and oid is not None:
        seen[4].append((oid, o))
        res.ids[o.sensor_id, o.phenomenon_time] = oid


class SqlObservations(SqlTables):
    # -- inside write_batch's transaction -------------------------------------------------
    def _insert_dead_letters(self, dead: list[DeadLetter], now: int) -> None:
        self._executemany(
            "INSERT INTO oup_dead_letters (received_at, topic, reason, payload, payload_size) "
            "VALUES (?, ?, ?, ?, ?)",
            [(now, d.topic[:1024], d.reason[:1024], d.kept_payload(), len(d.payload))
             for d in dead])

    def _add_counters(self, ingester: str, res: BatchResult, now: int) -> None:
        self.execute(
            f"INSERT INTO oup_ingest_counters (ingester, {', '.join(COUNTERS)}, updated_at) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ingester) DO UPDATE SET {_COUNT}, "
            "updated_at = excluded.updated_at",
            (ingester, res.messages, res.stored, res.duplicates, res.dead_lettered,
             res.observations_stored, res.observations_corrected, now))

    @staticmethod
    def _latest_by_table(latest: dict[str, list],
                         tables: dict[str, SensorHome]) -> dict[tuple[str, str], list]:
        """The batch's latest (time, value, sensor) per sensors table (table, id field)."""
        by_table: dict[tuple[str, str], list] = {}
        for sensor, (t, value, *_) in latest.items():
            if sensor in tables:
                home = tables[sensor]
                by_table.setdefault((home[0], home[1]), []).append((iso_us(t), value, sensor))
        return by_table

    @staticmethod
    def _batch_events(latest: dict[str, list],
                      tables: dict[str, SensorHome]) -> list[ChangeEvent]:
        """One change event per sensor of a known collection the batch wrote to."""
        return [observations_event(home[0], home[1], sensor, t, value, new, fixed,
                                   home[2] if len(home) > 2 else None, items)
                for sensor, (t, value, new, fixed, items) in sorted(latest.items())
                if (home := tables.get(sensor))]

    # -- after a re-import ------------------------------------------------------------------
    def refresh_latest(self, table: str, id_field: str) -> int:
        """Fill a (re-imported) sensors table's latest values from the observations."""
        rows = self.execute(
            "SELECT o.sensor_id, o.phenomenon_time, o.result FROM oup_observations o JOIN "
            "(SELECT sensor_id, MAX(phenomenon_time) AS t FROM oup_observations "
            "GROUP BY sensor_id) m ON m.sensor_id = o.sensor_id AND m.t = o.phenomenon_time")
        with self._transaction():
            self._executemany(
                f"UPDATE {quote(table)} SET latest_time = ?, latest_result = ? "
                f"WHERE {quote(id_field)} = ?", [(iso_us(t), v, s) for s, t, v in rows])
        return len(rows)

    # -- dead letters -----------------------------------------------------------------------
    def dead_letters(self, limit: int = 100, replayed: bool = False,
                     ids: list[int] | None = None) -> list[dict]:
        sql = (f"SELECT {', '.join(_DEAD_LETTER_KEYS)} FROM oup_dead_letters "
               "WHERE (NOT replayed OR ?)")
        args: list = [replayed]
        if ids:
            sql += f" AND id IN ({','.join('?' * len(ids))})"
            args += list(ids)
        rows = self.execute(sql + " ORDER BY id LIMIT ?", args + [limit])
        return [dict(zip(_DEAD_LETTER_KEYS, r)) for r in rows]

    def mark_replayed(self, outcomes: dict[int, str | None]) -> None:
        """After a replay: ``None`` marks a dead letter done, a string is its new reason."""
        with self._transaction():
            self._executemany("UPDATE oup_dead_letters SET replayed = TRUE WHERE id = ?",
                              [(i,) for i, why in outcomes.items() if why is None])
            self._executemany("UPDATE oup_dead_letters SET reason = ? WHERE id = ?",
                              [(why[:1024], i) for i, why in outcomes.items() if why])

    # -- counters and reads -------------------------------------------------------------------
    def counters(self) -> dict[str, dict[str, int]]:
        """Committed counters per ingester (client id)."""
        rows = self.execute(f"SELECT ingester, {', '.join(COUNTERS)} "
                            "FROM oup_ingest_counters ORDER BY ingester")
        return {r[0]: dict(zip(COUNTERS, r[1:])) for r in rows}

    def observations(self, sensor_id: str | None = None) -> list[tuple]:
        sql = "SELECT sensor_id, phenomenon_time, result, result_time FROM oup_observations"
        args: list = []
        if sensor_id:
            sql += " WHERE sensor_id = ?"
            args = [sensor_id]
        return self.execute(sql + " ORDER BY sensor_id, phenomenon_time", args)

    def first_time(self) -> str | None:
        return iso_us(self.execute("SELECT MIN(phenomenon_time) FROM oup_observations")[0][0])

    def count(self) -> int:
        return self.execute("SELECT COUNT(*) FROM oup_observations")[0][0]
