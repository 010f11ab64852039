"""The OpenAPI document in Dutch (``/openapi.json?lang=nl``, Swagger UI in Dutch).

pygeoapi writes the collections' own texts (titles, descriptions) in the language its
configuration names first, so the Dutch document starts from pygeoapi's document made
with Dutch first; ``in_dutch`` then puts the summaries and descriptions of the
operations, parameters and answers (OUP's own and pygeoapi's) in Dutch: whole texts from
``DUTCH``, texts with a name or a list in them by ``PATTERNS``. A text found in neither
stays English; ``tests/test_languages.py`` fails when one of the document's texts has no
Dutch (``SAME``: the few that read the same in both).
"""
from __future__ import annotations

import re
from typing import Any

DUTCH = {
    # the problem answers every operation may give (oup.http.openapi)
    "RFC 9457 problem details": "RFC 9457-probleemdetails",
    "Bad request: the problem document names the parameter":
        "Ongeldig verzoek: het probleemdocument noemt de parameter",
    "Sign in: no credentials, or credentials that are not valid":
        "Meld u aan: geen inloggegevens, of inloggegevens die niet geldig zijn",
    "Signed in, but without a role this takes":
        "Aangemeld, maar zonder een rol die hiervoor nodig is",
    "Not found": "Niet gevonden",
    "A method this path does not take (Allow says which)":
        "Een methode die dit pad niet aanneemt (Allow zegt welke wel)",
    "Clashes with what is there (a repeat of a stored reading)":
        "Botst met wat er al is (een herhaling van een opgeslagen meting)",
    "If-Match names a version that is no longer current":
        "If-Match noemt een versie die niet meer de huidige is",
    "A body of a media type this does not take":
        "Een inhoud van een mediatype dat dit niet aanneemt",
    "A feature the collection does not take: the problem document names the property":
        "Een object dat de collectie niet aanneemt: het probleemdocument noemt de eigenschap",
    "Server error": "Serverfout",
    "A part the answer needs is busy or away: send again (Retry-After)":
        "Een onderdeel dat het antwoord nodig heeft is bezet of weg: stuur opnieuw "
        "(Retry-After)",
    "CORS preflight answered": "CORS-preflight beantwoord",
    "a JSON Schema of the features' properties":
        "een JSON Schema van de eigenschappen van de objecten",
    "Search the items with a CQL2 JSON filter in the body":
        "Doorzoek de objecten met een CQL2 JSON-filter in de inhoud",
    "the matching features": "de objecten die voldoen",
    "the body is not CQL2 JSON": "de inhoud is geen CQL2 JSON",
    "the locations (GeoJSON)": "de locaties (GeoJSON)",
    "the observations as CoverageJSON": "de waarnemingen als CoverageJSON",
    "no observations for this query": "geen waarnemingen voor deze vraag",
    # the local stand-ins for OGC's parameters and answers (oup.http.openapi._LOCAL)
    "identifier of a feature": "identificatie van een object",
    "an instant or an interval (open ends '..' or empty), RFC 3339":
        "een tijdstip of een interval (open einden '..' of leeg), RFC 3339",
    "comma-separated properties, '-' for descending":
        "eigenschappen gescheiden door komma's, '-' voor aflopend",
    "free-text search terms": "zoekwoorden (vrije tekst)",
    "WKT POINT(x y) in CRS84": "WKT POINT(x y) in CRS84",
    "WKT POLYGON in CRS84": "WKT POLYGON in CRS84",
    "minx,miny,maxx,maxy in CRS84": "minx,miny,maxx,maxy in CRS84",
    "comma-separated parameters (observed properties)":
        "parameters gescheiden door komma's (waargenomen grootheden)",
    "vertical level (sensors have none: ignored)":
        "verticaal niveau (sensoren hebben er geen: genegeerd)",
    "a location (sensor) id": "de id van een locatie (sensor)",
    "an instance id": "de id van een instantie",
    "the landing page": "de startpagina",
    "a collection": "een collectie",
    "the collections": "de collecties",
    "a page of features": "een pagina objecten",
    "one feature": "één object",
    # OUP's own endpoints (their declarations: oup.http.routes.Endpoint)
    "the language of the answer: en or nl (default: by Accept-Language, else en)":
        "de taal van het antwoord: en of nl (standaard: volgens Accept-Language, anders en)",
    "a language tag such as nl or en-GB": "een taalcode zoals nl of en-GB",
    "Health of the service and its store": "Gezondheid van de dienst en zijn opslag",
    "the store is not answering": "de opslag antwoordt niet",
    "Prometheus metrics (text exposition format)": "Prometheus-metrieken (tekstformaat)",
    "This OpenAPI document": "Dit OpenAPI-document",
    "What a problem type means (the `type` of a problem document)":
        "Wat een probleemtype betekent (het `type` van een probleemdocument)",
    "a problem type": "een probleemtype",
    "The tile matrix sets": "De tegelmatrixsets",
    "A tile matrix set (OGC TMS 2.0 JSON)": "Een tegelmatrixset (OGC TMS 2.0 JSON)",
    "a tile matrix set (see /tileMatrixSets)": "een tegelmatrixset (zie /tileMatrixSets)",
    "Vector tilesets of a collection": "Vectortegelsets van een collectie",
    "Vector tilesets of the dataset": "Vectortegelsets van de dataset",
    "A vector tileset of a collection (TileJSON 3 with f=tilejson)":
        "Een vectortegelset van een collectie (TileJSON 3 met f=tilejson)",
    "A vector tileset of the dataset (TileJSON 3 with f=tilejson)":
        "Een vectortegelset van de dataset (TileJSON 3 met f=tilejson)",
    "A vector tile of a collection": "Een vectortegel van een collectie",
    "A vector tile of the dataset": "Een vectortegel van de dataset",
    "zoom level": "zoomniveau",
    "row, from the top": "rij, van boven af",
    "column, from the left": "kolom, van links af",
    "an empty tile": "een lege tegel",
    "not modified": "niet gewijzigd",
    "any value: a client's own cache buster (ignored); /map sends the last change event's id":
        "elke waarde: een eigen cachebreker van de client (genegeerd); /map stuurt de id van "
        "de laatste wijzigingsgebeurtenis",
    "The styles of a collection": "De stijlen van een collectie",
    "The styles of the dataset": "De stijlen van de dataset",
    "A style of a collection (MapLibre style JSON)":
        "Een stijl van een collectie (MapLibre-stijl-JSON)",
    "A style of the dataset (MapLibre style JSON)":
        "Een stijl van de dataset (MapLibre-stijl-JSON)",
    "a style": "een stijl",
    "Glyphs of a font for map labels (SDF, protobuf)":
        "Glyfen van een lettertype voor kaartlabels (SDF, protobuf)",
    "font names, comma-separated (this platform has 'OUP Sans')":
        "namen van lettertypen, gescheiden door komma's (dit platform heeft 'OUP Sans')",
    "a range of 256 characters, e.g. 0-255": "een reeks van 256 tekens, bijv. 0-255",
    "3D Tiles 1.1 of a collection (start at tileset.json)":
        "3D Tiles 1.1 van een collectie (begin bij tileset.json)",
    "a file of the tileset: tileset.json, or the content and subtrees it names (may hold '/')":
        "een bestand van de tegelset: tileset.json, of de inhoud en subtrees die het noemt "
        "(mag '/' bevatten)",
    "The 2D map page (MapLibre GL JS, offline)": "De 2D-kaartpagina (MapLibre GL JS, offline)",
    "The 3D viewer (CesiumJS, offline)": "De 3D-viewer (CesiumJS, offline)",
    "The 3D viewer's script and CesiumJS": "Het script van de 3D-viewer en CesiumJS",
    "viewer.js, or a file of CesiumJS (cesium/...)":
        "viewer.js, of een bestand van CesiumJS (cesium/...)",
    "the 3D collection to show (default buildings)":
        "de 3D-collectie om te tonen (standaard buildings)",
    "where to look: lon,lat,zoom": "waar te kijken: lon,lat,zoom",
    "where to look: lon,lat,zoom (as /map's)": "waar te kijken: lon,lat,zoom (zoals bij /map)",
    "where to look: lon,lat,range in metres": "waar te kijken: lon,lat,afstand in meters",
    "A script, style sheet or image the pages load":
        "Een script, stijlblad of afbeelding die de pagina's laden",
    "{package}/{file}: bootstrap, maplibre-gl, swagger-ui or oup":
        "{package}/{file}: bootstrap, maplibre-gl, swagger-ui of oup",
    "The AsyncAPI 3.0 document of the change events":
        "Het AsyncAPI 3.0-document van de wijzigingsgebeurtenissen",
    "Change events of a collection": "Wijzigingsgebeurtenissen van een collectie",
    "Change events of everything the caller may see":
        "Wijzigingsgebeurtenissen van alles wat de vrager mag zien",
    "a stream of CloudEvents 1.0 JSON events (Server-Sent Events: `id:` the event id, "
    "`data:` the event); see /asyncapi":
        "een stroom CloudEvents 1.0 JSON-gebeurtenissen (Server-Sent Events: `id:` de id "
        "van de gebeurtenis, `data:` de gebeurtenis); zie /asyncapi",
    "CQL2 (text or JSON) over the event's properties":
        "CQL2 (tekst of JSON) over de eigenschappen van de gebeurtenis",
    "cql2-text or cql2-json": "cql2-text of cql2-json",
    "only these sensors (comma-separated ids)":
        "alleen deze sensoren (id's gescheiden door komma's)",
    "resume after this event id": "ga verder na deze gebeurtenis-id",
    "resume after this event id (as Last-Event-ID)":
        "ga verder na deze gebeurtenis-id (zoals Last-Event-ID)",
    "invalid credentials": "ongeldige inloggegevens",
    "Add a feature (Part 4)": "Een object toevoegen (Part 4)",
    "Replace a feature (Part 4); where the collection takes client ids, a new id creates it":
        "Een object vervangen (Part 4); waar de collectie id's van de client aanneemt, maakt "
        "een nieuwe id het aan",
    "Update a feature with a JSON Merge Patch (RFC 7396)":
        "Een object bijwerken met een JSON Merge Patch (RFC 7396)",
    "Delete a feature": "Een object verwijderen",
    "The versions of a feature, newest first (each valid from, valid to, the kind of change)":
        "De versies van een object, nieuwste eerst (elk geldig van, geldig tot, de soort "
        "wijziging)",
    "the id of a feature": "de id van een object",
    "the CRS of the coordinates sent (OGC API Features Part 2); default CRS84":
        "het CRS van de gestuurde coördinaten (OGC API Features Part 2); standaard CRS84",
    "the ETag of the version the change is made to (412 when it is no longer current); "
    "optional":
        "de ETag van de versie waarop de wijziging wordt gemaakt (412 als die niet meer de "
        "huidige is); optioneel",
    "created": "aangemaakt",
    "created; Location names it": "aangemaakt; Location noemt het",
    "deleted": "verwijderd",
    "a whole number": "een geheel getal",
    "Free-text search over every collection one may see":
        "Zoeken in vrije tekst in elke collectie die men mag zien",
    "A GeoJSON FeatureCollection of the best hits, best first. Each hit's properties: "
    "collection, id, rank (higher is better; ranks order the hits of one store, they are no "
    "score), title, and the collection's searched attributes. A collection the caller may "
    "not see is never searched.":
        "Een GeoJSON FeatureCollection van de beste treffers, beste eerst. De eigenschappen "
        "van elke treffer: collection, id, rank (hoger is beter; de rangen ordenen de "
        "treffers van één opslag, het is geen score), title, en de doorzochte attributen "
        "van de collectie. Een collectie die de vrager niet mag zien, wordt nooit doorzocht.",
    "the words to find (each as the start of a word in a collection's declared text "
    "attributes), required":
        "de woorden om te vinden (elk als begin van een woord in de opgegeven "
        "tekstattributen van een collectie), verplicht",
    "the most hits (1 to 100, default 10)": "het hoogste aantal treffers (1 tot 100, standaard 10)",
    "comma-separated collection ids to search; default: every searchable one":
        "id's van de te doorzoeken collecties, gescheiden door komma's; standaard: elke "
        "doorzoekbare",
    # SensorThings (oup.sta.endpoints)
    "The SensorThings service root: entity sets and the conformance classes implemented":
        "De basis van de SensorThings-dienst: de entiteitsverzamelingen en de "
        "conformiteitsklassen die geïmplementeerd zijn",
    "the entity, the entities or a property": "de entiteit, de entiteiten of een eigenschap",
    "the entity's id: a number, or a 'quoted string'":
        "de id van de entiteit: een getal, of een 'tekst tussen aanhalingstekens'",
    "Navigation (Things('x')/Datastreams), a property (.../name, .../name/$value) or "
    "references ($ref)":
        "Navigatie (Things('x')/Datastreams), een eigenschap (.../name, .../name/$value) of "
        "verwijzingen ($ref)",
    "Entities are changed through the catalogue": "Entiteiten worden via de catalogus gewijzigd",
    "The observations of a datastream": "De waarnemingen van een datastroom",
    "Create an observation of this datastream": "Een waarneming van deze datastroom aanmaken",
    "Create an observation (it takes the path of an MQTT reading)":
        "Een waarneming aanmaken (die gaat de weg van een MQTT-meting)",
    "Create observations from data arrays (the Data Array extension); answers their links, "
    "or 'error'":
        "Waarnemingen aanmaken uit data arrays (de Data Array-extensie); antwoordt met hun "
        "links, of 'error'",
    # OGC API Processes (oup.processes.endpoints)
    "The processes offered (OGC API Processes)": "De aangeboden processen (OGC API Processes)",
    "A process: its inputs and outputs": "Een proces: zijn invoer en uitvoer",
    "a process (see /processes)": "een proces (zie /processes)",
    "Run a process: as a job for the workers; Prefer: respond-async answers 201 with its URL "
    "at once":
        "Een proces uitvoeren: als taak voor de workers; Prefer: respond-async antwoordt "
        "meteen 201 met de URL ervan",
    "Inputs are checked before the job is queued (400 naming the input). `response`: raw "
    "(the output itself) or document ({outputId: value}).":
        "De invoer wordt gecontroleerd voordat de taak in de wachtrij komt (400 noemt de "
        "invoer). `response`: raw (de uitvoer zelf) of document ({outputId: waarde}).",
    "the job is queued; Location is its URL": "de taak staat in de wachtrij; Location is de URL",
    "Your jobs, newest first": "Uw taken, nieuwste eerst",
    "jobs per page": "taken per pagina",
    "jobs to skip": "over te slaan taken",
    "A job: its status and progress": "Een taak: de status en de voortgang",
    "a job (see /jobs)": "een taak (zie /jobs)",
    "Dismiss a job: a queued or running one stops, a finished one's results are dropped":
        "Een taak afzeggen: een wachtende of lopende stopt, van een afgeronde vervallen de "
        "resultaten",
    "A finished job's results": "De resultaten van een afgeronde taak",
    # pygeoapi's own texts
    "Landing page": "Startpagina",
    "This document": "Dit document",
    "UI to render the OpenAPI document": "Interface die het OpenAPI-document toont",
    "API conformance definition": "Conformiteit van de API",
    "Collections": "Collecties",
    "information": "informatie",
    "successful operation": "geslaagd",
    "successful queryables operation": "geslaagd (bevraagbare eigenschappen)",
    "options response": "antwoord op OPTIONS",
    "no content": "geen inhoud",
    "Unexpected error": "Onverwachte fout",
    "Retrieves the tiles description for this collection":
        "Geeft de beschrijving van de tegels van deze collectie",
    "The profile to be applied to a given request": "Het profiel voor dit verzoek",
    "Configuration resource identifier": "Identificatie van de configuratiebron",
    "the resource path": "het pad van de bron",
    "the language used for the title and description":
        "de taal van de titel en de beschrijving",
    "a human readable title for the queryable":
        "een leesbare titel van de bevraagbare eigenschap",
    "a human-readable narrative describing the queryable":
        "een leesbare beschrijving van de bevraagbare eigenschap",
    "the data type of the queryable": "het gegevenstype van de bevraagbare eigenschap",
    "a reference to the formal definition of the type":
        "een verwijzing naar de formele definitie van het type",
    "the token that may be used in a CQL predicate":
        "het woord dat in een CQL-predicaat gebruikt mag worden",
    'Additional "free-form" parameters that are not explicitly defined':
        'Extra "vrije" parameters die niet uitdrukkelijk gedefinieerd zijn',
    "Indicates the EPSG for the given bbox coordinates.":
        "Geeft de EPSG-code van de gegeven bbox-coördinaten.",
    "Indicates the coordinate reference system for the given bbox coordinates.":
        "Geeft het coördinaatreferentiesysteem van de gegeven bbox-coördinaten.",
    "Indicates the coordinate reference system for the results.":
        "Geeft het coördinaatreferentiesysteem van de resultaten.",
    "This option can be used to skip response geometries for each feature.":
        "Met deze optie worden de geometrieën van de objecten weggelaten.",
    "The properties that should be included. The parameter value is a comma-separated list "
    "of property names.":
        "De eigenschappen die meegegeven worden. De waarde is een lijst van namen van "
        "eigenschappen, gescheiden door komma's.",
    "The optional limit parameter limits the number of items that are presented in the "
    "response document (maximum=10000, default=10).":
        "De optionele parameter limit beperkt het aantal objecten in het antwoord "
        "(maximum=10000, standaard=10).",
    "The optional offset parameter indicates the index within the result set from which the "
    "server shall begin presenting results in the response document.  The first element has "
    "an index of 0 (default).":
        "De optionele parameter offset geeft de positie in de resultaten vanaf waar de server "
        "ze in het antwoord toont. Het eerste element heeft positie 0 (standaard).",
    "The optional f parameter indicates the output format which the server shall provide as "
    "part of the response document.  The default format is GeoJSON.":
        "De optionele parameter f geeft het formaat van het antwoord. Het standaardformaat "
        "is GeoJSON.",
    "Only features that have a geometry that intersects the bounding box are selected.The "
    "bounding box is provided as four or six numbers, depending on whether the coordinate "
    "reference system includes a vertical axis (height or depth).":
        "Alleen objecten waarvan de geometrie het omsluitende vak snijdt, worden gekozen. Het "
        "vak wordt gegeven als vier of zes getallen, naargelang het "
        "coördinaatreferentiesysteem een verticale as heeft (hoogte of diepte).",
    'The optional lang parameter instructs the server return a response in a certain '
    'language, if supported.  If the language is not among the available values, the '
    'Accept-Language header language will be used if it is supported. If the header is '
    'missing, the default server language is used. Note that providers may only support a '
    'single language (or often no language at all), that can be different from the server '
    'language.  Language strings can be written in a complex (e.g. '
    '"fr-CA,fr;q=0.9,en-US;q=0.8,en;q=0.7"), simple (e.g. "de") or locale-like (e.g. '
    '"de-CH" or "fr_BE") fashion.':
        "De optionele parameter lang vraagt de server om een antwoord in een bepaalde taal, "
        "als die aangeboden wordt. Staat de taal er niet tussen, dan geldt de taal van de "
        "header Accept-Language als die aangeboden wordt; zonder die header de standaardtaal "
        "van de server (hier: en of nl).",
    # named scenarios, a job's result as a collection, the documentation site
    "A feature of a 3D collection also has `oup:base` and `oup:top`: the heights of its ground and its top above the ETRS89 ellipsoid (metres), as 3D viewers place it. One the collection has (changed or removed) has `oup:tileId`: its id in the collection's vector tiles, by which a map leaves it out.":
        'Een object van een 3D-collectie heeft ook `oup:base` en `oup:top`: de hoogte van zijn voet en van zijn top boven de ETRS89-ellipsoïde (meter), zoals 3D-viewers het plaatsen. Een object dat de collectie heeft (gewijzigd of verwijderd) heeft `oup:tileId`: zijn id in de vectortegels van de collectie, waarmee een kaart het weglaat.',
    'Change events of a scenario: the writes into it':
        'Wijzigingsgebeurtenissen van een scenario: wat erin geschreven wordt',
    "a stream of CloudEvents 1.0 JSON events (Server-Sent Events: `id:` the event id, `data:` the event), an `oup.scenario.changed` event per write into the scenario: the collection, the feature's id, the kind of write, and the feature as /scenarios/{scenarioId}/changes now has it (null when the scenario no longer changes it). Only for those who may see the scenario; none of these reach /events.":
        'een stroom CloudEvents 1.0 JSON-gebeurtenissen (Server-Sent Events: `id:` de id van de gebeurtenis, `data:` de gebeurtenis), een `oup.scenario.changed`-gebeurtenis per schrijfactie in het scenario: de collectie, de id van het object, de soort schrijfactie, en het object zoals /scenarios/{scenarioId}/changes het nu heeft (null als het scenario het niet meer wijzigt). Alleen voor wie het scenario mag zien; geen ervan komt op /events.',
    "A feature of a job's result":
        'Eén object van het resultaat van een taak',
    "A job's result as a temporary collection":
        'Het resultaat van een taak als tijdelijke collectie',
    'A page or file of the documentation':
        'Een pagina of bestand van de documentatie',
    'A scenario':
        'Eén scenario',
    "A style of a job's result (MapLibre style JSON): its areas in classes of the mapped statistic":
        'Een stijl van het resultaat van een taak (MapLibre-stijl-JSON): de gebieden in klassen van de getoonde statistiek',
    "A vector tile of a job's result":
        'Eén vectortegel van het resultaat van een taak',
    "A vector tileset of a job's result (TileJSON 3 with f=tilejson)":
        'Eén vectortegelset van het resultaat van een taak (TileJSON 3 met f=tilejson)',
    'Drop a scenario and what it proposes (its owner only)':
        'Een scenario verwijderen met wat het voorstelt (alleen door de eigenaar)',
    'Make a scenario: a named set of proposed changes layered over collections, never written into them':
        'Een scenario maken: een benoemde set voorgestelde wijzigingen over collecties heen gelegd, nooit erin geschreven',
    "The body: `title`, `collections` (the ones it proposes changes to) and `shared_with` (roles that may see it and write into it; default none). Changes go through the collections' write path with `?scenario={id}`.":
        'De inhoud: `title`, `collections` (die waarvoor het wijzigingen voorstelt) en `shared_with` (rollen die het mogen zien en erin schrijven; standaard geen). Wijzigingen gaan via het schrijfpad van de collecties met `?scenario={id}`.',
    'The documentation (guides, reference, architecture)':
        'De documentatie (handleidingen, naslag, architectuur)',
    "The features of a job's result":
        'De objecten van het resultaat van een taak',
    "The styles of a job's result":
        'De stijlen van het resultaat van een taak',
    "The vector tilesets of a job's result":
        'De vectortegelsets van het resultaat van een taak',
    'What a scenario proposes: a feature per change, its oup:collection and oup:change (added, changed, removed)':
        'Wat een scenario voorstelt: een object per wijziging, met oup:collection en oup:change (added, changed, removed)',
    'Your scenarios, and those shared with your roles':
        "Uw scenario's, en die gedeeld met uw rollen",
    "a collection to show and frame, with its own style: a job's result (job-{jobId}) too":
        'een collectie om te tonen en in beeld te brengen, met haar eigen stijl: ook het resultaat van een taak (job-{jobId})',
    'a feature':
        'een object',
    'a job id':
        'het id van een taak',
    'a page or file of the documentation site':
        'een pagina of bestand van de documentatiesite',
    "a page's folder, asked without its trailing slash: the same URL with it (the site's links are relative)":
        'de map van een pagina, gevraagd zonder slash aan het eind: dezelfde URL met die slash (de links van de site zijn relatief)',
    'a scenario (see /scenarios)':
        'een scenario (zie /scenarios)',
    'dropped':
        'verwijderd',
    'features per page (default 10)':
        'objecten per pagina (standaard 10)',
    'features to skip':
        'over te slaan objecten',
    'made; Location names it':
        'gemaakt; Location noemt het',
    'minx,miny,maxx,maxy (CRS84): the features that touch it':
        'minx,miny,maxx,maxy (CRS84): de objecten die het raken',
    "show this scenario's proposed changes too (see /scenarios)":
        'ook de voorgestelde wijzigingen van dit scenario tonen (zie /scenarios)',
    "the caller's own job only; anyone else: 404":
        'alleen de eigen taak van de vrager; ieder ander: 404',
    'the collection as this scenario (its id, see /scenarios) has it: its proposed changes layered over the collection; sign in (401), and a scenario not yours nor shared with your roles is a 404':
        'de collectie zoals dit scenario (zijn id, zie /scenarios) haar heeft: de voorgestelde wijzigingen over de collectie heen gelegd; aanmelden is nodig (401), en een scenario dat niet van u is en niet met uw rollen gedeeld is, is een 404',
    "the documentation's sources are missing or do not build":
        'de bronnen van de documentatie ontbreken of zijn niet te bouwen',
    'the job whose result it is':
        'de taak waarvan het het resultaat is',
    'write into this scenario (its id) instead of the collection: a proposed change, layered over it (see /scenarios)':
        'in dit scenario (zijn id) schrijven in plaats van in de collectie: een voorgestelde wijziging, eroverheen gelegd (zie /scenarios)',
}

# texts that read the same in Dutch (formulas and names)
SAME = {"WKT POINT(x y) in CRS84", "WKT POLYGON in CRS84", "minx,miny,maxx,maxy in CRS84"}

# texts with a name or a list in them: pygeoapi's per collection, OUP's per parameter
PATTERNS = [(re.compile(english), dutch) for english, dutch in (
    (r"Get pre-defined locations of (?P<x>.+)", r"\g<x>: de vaste locaties ophalen"),
    (r"Get pre-defined instances of (?P<x>.+)", r"\g<x>: de vaste instanties ophalen"),
    (r"Get (?P<x>.+) items", r"\g<x>: objecten ophalen"),
    (r"Get (?P<x>.+) item by id", r"\g<x>: één object ophalen"),
    (r"Get (?P<x>.+) metadata", r"\g<x>: beschrijving ophalen"),
    (r"Get (?P<x>.+) queryables", r"\g<x>: bevraagbare eigenschappen ophalen"),
    (r"Get (?P<x>.+) schema", r"\g<x>: schema ophalen"),
    (r"Get (?P<x>.+) items with CQL2", r"\g<x>: objecten ophalen met CQL2"),
    (r"Options for (?P<x>.+) items", r"\g<x>: OPTIONS voor de objecten"),
    (r"Options for (?P<x>.+) item by id", r"\g<x>: OPTIONS voor één object"),
    (r"Fetch a (?P<x>.+) tiles description", r"\g<x>: beschrijving van de tegels ophalen"),
    (r"Get a (?P<x>.+) tile", r"\g<x>: één tegel ophalen"),
    (r"Get (?P<x>.+) instance", r"\g<x>: één instantie ophalen"),
    (r"query (?P<x>.+) by location", r"\g<x>: bevragen per locatie"),
    (r"query (?P<x>.+) by position", r"\g<x>: bevragen op een positie"),
    (r"query (?P<x>.+) by area", r"\g<x>: bevragen in een gebied"),
    (r"query (?P<x>.+) by cube", r"\g<x>: bevragen in een kubus"),
    (r"query (?P<x>.+) by radius", r"\g<x>: bevragen binnen een straal"),
    (r"query (?P<x>.+) by trajectory", r"\g<x>: bevragen langs een traject"),
    (r"query (?P<x>.+) by corridor", r"\g<x>: bevragen in een corridor"),
    (r"Add a feature \(Part 4\); or search the items with a cql2 json filter in the body",
     "Een object toevoegen (Part 4); of de objecten doorzoeken met een CQL2 JSON-filter in "
     "de inhoud"),
    (r"the format of the answer \(default: by Accept, else (?P<f>\w+)\)",
     r"het formaat van het antwoord (standaard: volgens Accept, anders \g<f>)"),
    (r"free text: the items whose (?P<x>.+) hold every word given \(each as the start of a "
     r"word\), best match first",
     r"vrije tekst: de objecten waarvan \g<x> elk gegeven woord bevatten (elk als begin van "
     r"een woord), beste treffer eerst"),
    (r"only these event types \(comma-separated\): (?P<x>.+)",
     r"alleen deze soorten gebeurtenissen (gescheiden door komma's): \g<x>"),
    (r"SensorThings query option (?P<x>\$\w+)", r"SensorThings-queryoptie \g<x>"),
    (r"The (?P<x>\w+) \(query options in SQL\)", r"De \g<x> (queryopties in SQL)"),
    (r"(?P<x>\w+) come from the catalogue", r"\g<x> komen uit de catalogus"),
    (r"One (?P<x>\w+)", r"Eén \g<x>"),
)]
_TEXTS = ("summary", "description", "title")


def dutch(text: str) -> str:
    """``text`` in Dutch, or as it is where the catalogue has no Dutch for it."""
    if text in DUTCH:
        return DUTCH[text]
    for english, dutch_ in PATTERNS:
        m = english.fullmatch(text)
        if m:
            return m.expand(dutch_)
    return text


def in_dutch(node: Any, key: str = "") -> Any:
    """The OpenAPI document ``node`` with its summaries, descriptions and titles in Dutch
    (not the names of schemas' properties, which are data)."""
    if isinstance(node, dict):
        return {k: (dutch(v) if k in _TEXTS and isinstance(v, str) and key != "properties"
                    else in_dutch(v, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [in_dutch(v) for v in node]
    return node
