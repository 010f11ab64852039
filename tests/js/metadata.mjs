// Load a 3D Tiles tileset with loaders.gl and print the metadata of one city object.
// usage: node metadata.mjs <tileset.json path> <property> <value>
// Prints {tiles, features, match}: match holds the object's decoded properties.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse } from "@loaders.gl/core";
import { Tiles3DLoader } from "@loaders.gl/3d-tiles";

const [tilesetPath, key, wanted] = process.argv.slice(2);

async function loadTileset(path) {
  return parse(readFileSync(path), Tiles3DLoader, { "3d-tiles": { isTileset: true } });
}

function* contents(tile) {
  if (tile.content?.uri) yield tile.content.uri;
  for (const child of tile.children ?? []) yield* contents(child);
}

const out = { tiles: 0, features: 0, match: null, tilesetVersion: null };

async function walk(path) {
  const raw = JSON.parse(readFileSync(path, "utf8"));
  out.tilesetVersion ??= raw.asset.version;
  const tileset = await loadTileset(path);  // the loader itself must accept the tileset
  if (!tileset.root) throw new Error("loaders.gl found no root tile");
  for (const uri of contents(raw.root)) {
    const file = join(dirname(path), uri);
    if (uri.endsWith(".json")) { await walk(file); continue; }
    const tile = await parse(readFileSync(file), Tiles3DLoader, {
      "3d-tiles": { isTileset: false, loadGLTF: true }, gltf: { loadImages: false },
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
      out.match = Object.fromEntries(Object.entries(table.properties).map(([k, p]) => [k, p.data[i]]));
    }
  }
}

await walk(tilesetPath);
console.log(JSON.stringify(out));
