// What /viewer and /map share about the live sensors: each sensor collection's items read
// once, then kept current from the collection's change events (Server-Sent Events on
// /collections/{id}/events, one event per sensor per ingest batch, sent after its commit),
// so a reading shows within a second of its commit instead of at the next poll.
//
// oupLive.follow(collection id, state, page) calls
//   page.load(features)   every sensor (at the start, and when the items are read again)
//   page.update(feature)  one sensor whose value, or freshness, changed
//   page.status(text)     "live", or what is wrong with the stream
// and records in state.lastEvent {id, at: Date.now(), sensor, time (the event's, RFC 3339)}
// the last event applied, from just before its sensor is drawn.
//
// No periodic re-read: each event is logged in the transaction that stored what it tells,
// numbered in commit order, and the browser resumes after the last one it saw. What the
// observation events do not tell (a re-import, a catalogue change) comes as an event that
// makes the page read the items again; so does a stream the browser gave up on, and a
// page that slept for long.
window.oupLive = (function () {
  "use strict";
  const STALE_MS = 3600 * 1000;  // a value older than an hour is drawn as stale
  // Going stale is a matter of time passing, not of an event: look again now and then.
  const RECHECK_MS = 30 * 1000;
  const ASLEEP_MS = 3600 * 1000;
  const REOPEN_MS = [2000, 5000, 15000, 60000];  // after a stream the server refused
  const MAX_QUEUED = 10_000;  // events held while the items are read
  const OBSERVATIONS = new Set(["oup.observations.stored", "oup.observations.corrected"]);
  // The collection itself changed (re-imported, another title or access class): sensors
  // may have come, gone or moved, which the observation events do not say.
  const RELOAD = new Set(["oup.collection.imported", "oup.collection.changed",
                          "oup.collection.added"]);

  const fresh = (p) => Boolean(p.latest_time) && Date.now() - Date.parse(p.latest_time) < STALE_MS;
  const time = (p) => (p.latest_time ? Date.parse(p.latest_time) : -Infinity);

  function follow(cid, state, page) {
    const byId = new Map();  // sensor id -> its feature, properties kept current
    const drawnFresh = new Map();  // sensor id -> whether it was last drawn fresh
    const unknown = new Set();  // sensors an event named and a read did not find
    let loaded = false, queued = [], failures = 0, reads = 0;

    function draw(f) {
      drawnFresh.set(String(f.id), fresh(f.properties));
      page.update(f);
    }

    // An event carries the batch's latest reading; the store keeps the newest by
    // phenomenon time (a late, older reading does not replace it), and so does the page.
    function apply(msg) {
      const ev = JSON.parse(msg.data);
      if (RELOAD.has(ev.type)) return read();
      if (!OBSERVATIONS.has(ev.type)) return;
      const f = byId.get(String(ev.data.id));
      if (!f) {  // a sensor the items did not have: read them again, once
        if (!unknown.has(String(ev.data.id))) read();
        unknown.add(String(ev.data.id));
        return;
      }
      const p = ev.data.properties;
      if (time(p) < time(f.properties)) return;
      Object.assign(f.properties, p);
      state.lastEvent = { id: msg.lastEventId, at: Date.now(), sensor: `${cid}/${f.id}`,
                          time: ev.time };
      draw(f);
    }

    // Read after the stream is open, so each change is in the items, on the stream, or
    // both (applying one twice changes nothing); events that come meanwhile wait. Only
    // the last read started counts: an earlier one may predate events already waiting.
    async function read() {
      loaded = false;
      const mine = ++reads;
      try {
        const r = await fetch(`/collections/${encodeURIComponent(cid)}/items?f=json&limit=10000`);
        if (!r.ok) throw new Error(`${cid} items: ${r.status}`);
        const doc = await r.json();
        if (mine !== reads) return;
        byId.clear();
        doc.features.forEach((f) => byId.set(String(f.id), f));
        page.load(doc.features);
        doc.features.forEach((f) => drawnFresh.set(String(f.id), fresh(f.properties)));
        loaded = true;
        const waiting = queued;
        queued = [];
        waiting.forEach(apply);
      } catch (err) {
        if (mine !== reads) return;
        state.error = `sensors: ${err}`;
        page.status(oupT("could not read the sensors: {error}; trying again in 10 s", { error: err }));
        setTimeout(() => { if (mine === reads) read(); }, 10_000);
      }
    }

    function open() {
      const source = new EventSource(`/collections/${encodeURIComponent(cid)}/events`);
      source.onopen = () => {
        page.status("live");
        // a new stream starts from now: what happened before it is read from the items;
        // a stream the browser resumed (Last-Event-ID) misses nothing and needs no read
        if (failures !== 0 || !byId.size) read();
        failures = 0;
      };
      source.onmessage = (msg) => {
        if (loaded) return apply(msg);
        queued.push(msg);
        if (queued.length > MAX_QUEUED) {  // reads failing for long: a fresh one covers them
          queued = [];
          read();
        }
      };
      // resumed from further back than the server's log keeps: what it lost, the items have
      source.addEventListener("oup.events.missed", () => read());
      source.onerror = () => {
        if (source.readyState !== EventSource.CLOSED) {
          page.status(oupT("reconnecting…"));  // the browser tries again by itself
          return;
        }
        // refused (an error status, a proxy's page): the browser gave up; we do not
        const wait = REOPEN_MS[Math.min(failures, REOPEN_MS.length - 1)];
        failures += 1;
        page.status(oupT("disconnected; trying again in {s} s", { s: wait / 1000 }));
        setTimeout(open, wait);
      };
    }

    let ticked = Date.now();
    setInterval(() => {
      // Asleep (a closed laptop, a frozen tab) for long: the events the browser resumes
      // after may have left the server's log since (a day, by default), so read again.
      if (Date.now() - ticked > ASLEEP_MS && loaded) read();
      ticked = Date.now();
      for (const [id, f] of byId) if (fresh(f.properties) !== drawnFresh.get(id)) draw(f);
    }, RECHECK_MS);
    open();
  }

  return { follow, fresh };
})();
