// The texts the scripts of /map, /viewer and the API page show, in the page's language
// (<html lang>, which the server chose from lang= or Accept-Language). The scripts say
// them in English; their Dutch is here. oupT(text, {name: value}) is the text in the
// page's language with {name} filled in; oupT.follow(element) keeps the texts the
// libraries draw there themselves (Swagger UI's labels and buttons, CesiumJS's credits)
// in it. The API's own texts in Swagger UI come in Dutch from /openapi.json?lang=nl.
// tests/test_languages.py walks the pages in Chromium in Dutch and finds no English.
window.oupT = (function () {
  "use strict";
  const DUTCH = {
    // the maps' status lines (mappage.js, viewer.js, livesensors.js)
    "{n} sensors": "{n} sensoren",
    "latest values, live": "laatste waarden, live",
    "no data yet": "nog geen gegevens",
    "{name}: no data yet": "{name}: nog geen gegevens",
    "could not read the sensors: {error}; trying again in 10 s":
      "kon de sensoren niet lezen: {error}; over 10 s opnieuw",
    "reconnecting…": "opnieuw verbinden…",
    "disconnected; trying again in {s} s": "verbinding verbroken; over {s} s opnieuw",
    "could not load the map: {error}": "kon de kaart niet laden: {error}",
    "the feature": "het object",
    "{sets}: {n} tiles": "{sets}: {n} tegels",
    "no collection has 3D Tiles yet: run `oup tile`": "nog geen collectie heeft 3D Tiles: voer `oup tile` uit",
    "could not load the 3D collections: {error}": "kon de 3D-collecties niet laden: {error}",
    "Nothing in the middle of the map.": "Niets in het midden van de kaart.",
    "3D view: arrow keys move it, + and - zoom, Enter shows what is in the middle":
      "3D-weergave: pijltjestoetsen verplaatsen, + en - zoomen, Enter toont wat in het midden is",
    // the search box (search.js)
    "Search places and features": "Zoek plaatsen en objecten",
    "Find": "Zoek",
    "Search results": "Zoekresultaten",
    "searching…": "zoeken…",
    "{n} found; the first is shown": "{n} gevonden; de eerste wordt getoond",
    "1 found; it is shown": "1 gevonden; die wordt getoond",
    "nothing found for “{q}”": "niets gevonden voor “{q}”",
    "search failed: {error}": "zoeken mislukt: {error}",
    // MapLibre's own controls (its locale option)
    "Map": "Kaart",
    "Map marker": "Kaartmarkering",
    "Zoom in": "Inzoomen",
    "Zoom out": "Uitzoomen",
    "Reset bearing to north": "Draai terug naar het noorden",
    // the names the API page gives Swagger UI's selects
    "Choice": "Keuze",
    "content type": "inhoudstype",
  };
  // what Swagger UI and CesiumJS write themselves, as they write them (a text node each)
  const WIDGETS = {
    "Servers": "Servers",
    "Parameters": "Parameters",
    "Try it out": "Probeer het",
    "Cancel": "Annuleren",
    "Execute": "Uitvoeren",
    "Clear": "Wissen",
    "Name": "Naam",
    "Description": "Beschrijving",
    "Responses": "Antwoorden",
    "Response": "Antwoord",
    "Code": "Code",
    "Links": "Links",
    "No links": "Geen links",
    "No parameters": "Geen parameters",
    "Media type": "Mediatype",
    "Media Type": "Mediatype",
    "Controls": "Bepaalt de header",  // "Controls <code>Accept</code> header."
    "header.": " ",
    "Example Value": "Voorbeeldwaarde",
    "Schema": "Schema",
    "Schemas": "Schema's",
    "Request body": "Inhoud van het verzoek",
    "required": "verplicht",
    "Available values": "Mogelijke waarden",
    "Default value": "Standaardwaarde",
    "Expand all": "Alles uitklappen",
    "Collapse all": "Alles inklappen",
    "Expand operation": "Operatie uitklappen",
    "Collapse operation": "Operatie inklappen",
    "Copy to clipboard": "Naar het klembord kopiëren",
    "Find out more": "Meer weten",
    "Terms of service": "Gebruiksvoorwaarden",
    "Send email to": "Stuur een e-mail naar",
    "Website": "Website",
    "Download": "Downloaden",
    "Request URL": "URL van het verzoek",
    "Server response": "Antwoord van de server",
    "Response body": "Inhoud van het antwoord",
    "Response headers": "Headers van het antwoord",
    "Details": "Details",
    "Loading...": "Laden...",
    "Undocumented": "Niet beschreven",
    "Failed to fetch.": "Ophalen mislukt.",
    "Authorize": "Aanmelden",
    // CesiumJS's credits
    "Data attribution": "Bronvermelding",
    "Close data attribution": "Bronvermelding sluiten",
  };
  const dutch = document.documentElement.lang === "nl";

  function oupT(text, values) {
    const said = (dutch && DUTCH[text]) || text;
    return values ? said.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m)) : said;
  }

  // the libraries' texts under root in Dutch: the text nodes and the labels read out
  function tree(root) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const text = node.nodeValue.trim();
      if (text && WIDGETS[text] && WIDGETS[text] !== text) {
        node.nodeValue = node.nodeValue.replace(text, WIDGETS[text]);
      }
    }
    for (const el of root.querySelectorAll("[aria-label], [title]")) {
      for (const name of ["aria-label", "title"]) {
        const v = el.getAttribute(name);
        if (v && WIDGETS[v] && WIDGETS[v] !== v) el.setAttribute(name, WIDGETS[v]);
      }
    }
  }
  // ... now and whenever the library draws anew
  oupT.follow = (root) => {
    if (!dutch || !root) return;
    tree(root);
    new MutationObserver(() => tree(root)).observe(root, {
      childList: true, subtree: true, characterData: true, attributes: true,
      attributeFilter: ["aria-label", "title"] });
  };
  // MapLibre's locale option: its controls' texts
  oupT.maplibre = () => ({
    "Map.Title": oupT("Map"), "Marker.Title": oupT("Map marker"),
    "NavigationControl.ZoomIn": oupT("Zoom in"), "NavigationControl.ZoomOut": oupT("Zoom out"),
    "NavigationControl.ResetBearing": oupT("Reset bearing to north"),
  });
  oupT.catalogue = { DUTCH, WIDGETS };  // for the tests
  return oupT;
})();
