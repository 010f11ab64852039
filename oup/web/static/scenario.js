// What /map and /viewer share about a scenario (?scenario=<id>): what it proposes
// (/scenarios/{id}/changes), read once, then kept current from the scenario's own change
// events (/scenarios/{id}/events: one for each write into it, carrying the feature as the
// changes now have it, or null when the scenario no longer changes it), so a write into
// the scenario shows on an open page without a reload, as a write into the city does.
//
// oupScenario.follow(scenario id, state, draw) calls
//   draw(about, changes)  with the scenario and its changes (a GeoJSON FeatureCollection),
//                         at the start and after each event applied
// and counts the events applied in state.scenarioEvents (state.lastScenarioEvent: the
// last). Only those who may see the scenario get its stream (else 401 or 404).
window.oupScenario = (function () {
  "use strict";

  async function json(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${url}: ${r.status}`);
    return r.json();
  }

  // An event stream, once the server answered it (its events from then on). EventSource
  // reconnects by itself, with the last id it saw: nothing in between is missed.
  function opened(url, on) {
    return new Promise((resolve, reject) => {
      const stream = new EventSource(url);
      stream.onmessage = (msg) => on(JSON.parse(msg.data));
      stream.onopen = () => resolve(stream);
      stream.onerror = () => {
        if (stream.readyState === EventSource.CLOSED) reject(new Error(`${url}: refused`));
      };
    });
  }

  // An event's feature in place of the one of its collection and id, or that one gone.
  function apply(changes, { collection, id, feature }) {
    const at = changes.features.findIndex((f) =>
      f.properties["oup:collection"] === collection && String(f.id) === String(id));
    if (feature && at >= 0) changes.features[at] = feature;
    else if (feature) changes.features.push(feature);
    else if (at >= 0) changes.features.splice(at, 1);
  }

  async function follow(id, state, draw) {
    const base = `/scenarios/${encodeURIComponent(id)}`;
    const about = await json(base);
    let changes = null;
    const early = [];  // events that came while the changes were read
    state.scenarioEvents = 0;
    await opened(`${base}/events`, (ev) => {
      if (!changes) return early.push(ev);
      apply(changes, ev.data);
      state.scenarioEvents += 1;
      state.lastScenarioEvent = ev;
      draw(about, changes);
    });
    const read = await json(`${base}/changes`);  // once the stream is open: none missed
    early.forEach((ev) => apply(read, ev.data));  // (each says what is now: again is harmless)
    changes = read;
    draw(about, changes);
  }

  return { follow };
})();
