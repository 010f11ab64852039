// Load a 3D Tiles tileset with loaders.gl and print the metadata of one city object.
// usage: node metadata.mjs <tileset.json path> <property> <value>
// Prints {tiles, features, match, matches}: match holds the object's decoded properties
// in the first tile that has it (a coarse tile, where it is drawn as a block), matches the
// decoded properties and drawn vertices from every tile that has it (coarse and leaf).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse } from "@loaders.gl/core";
import { Tiles3DLoader } from "@loaders.gl/3d-tiles";
import draco3d from "draco3d";

// the Draco decoder from npm, not from a CDN: the tests run offline
const modules = { draco3d };
// loaders.gl 4 runs its EXT_mesh_features step before it decodes Draco, and so reads the
// feature-id accessors from raw bytes; the feature ids are taken here from the decoded
// Draco attributes instead, as CesiumJS does.
const gltfOptions = { loadImages: false, excludeExtensions: { EXT_mesh_features: false } };

const [tilesetPath, key, wanted] = process.argv.slice(2);

async function loadTileset(path) {
  return parse(readFileSync(path), Tiles3DLoader, { "3d-tiles": { isTileset: true } });
}

function* contents(tile) {
  if (tile.content?.uri) yield tile.content.uri;
  for (const child of tile.children ?? []) yield* contents(child);
}

const out = { tiles: 0, features: 0, match: null, matches: [], tilesetVersion: null };

async function walk(path) {
  const raw = JSON.parse(readFileSync(path, "utf8"));
  out.tilesetVersion ??= raw.asset.version;
  const tileset = await loadTileset(path);  // the loader itself must accept the tileset
  if (!tileset.root) throw new Error("loaders.gl found no root tile");
  for (const uri of contents(raw.root)) {
    const file = join(dirname(path), uri);
    if (uri.endsWith(".json")) { await walk(file); continue; }
    const tile = await parse(readFileSync(file), Tiles3DLoader, {
      "3d-tiles": { isTileset: false, loadGLTF: true }, gltf: gltfOptions, modules,
    });
    out.tiles += 1;
    const gltf = tile.gltf;
    const meta = gltf.extensions?.EXT_structural_metadata ?? gltf.json?.extensions?.EXT_structural_metadata;
    const table = meta.propertyTables[0];
    out.features += table.count;
    const column = table.properties[key]?.data;
    if (!column) throw new Error(`no decoded property ${key} in ${uri}`);
    const i = column.findIndex((v) => String(v) === wanted);
    if (i >= 0) {
      const props = Object.fromEntries(Object.entries(table.properties).map(([k, p]) => [k, p.data[i]]));
      out.match ??= props;
      // the vertices drawn for it: its feature id in the decoded Draco attribute of each
      // primitive (a leaf that buildings were added to has a primitive for them)
      const primitives = gltf.meshes[0].primitives;
      const drawn = primitives.map((p) => p.attributes._FEATURE_ID_0.value
        .reduce((n, id) => n + (id === i ? 1 : 0), 0));
      const vertices = drawn.reduce((a, b) => a + b, 0);
      out.matches.push({ uri, props, vertices, parts: primitives.length,
                         inPart: drawn.findIndex((n) => n > 0) });
    }
  }
}

await walk(tilesetPath);
console.log(JSON.stringify(out));
