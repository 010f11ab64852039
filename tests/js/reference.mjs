// The reference glTF compressor, glTF Transform (the library behind @gltf-transform/cli),
// run on OUP's own tiles: each glb is read (decoding its Draco), then written again with
// the CLI's defaults for `gltf-transform draco` and for `gltf-transform meshopt`.
// usage: node reference.mjs <glb>...   Prints {draco, meshopt, files}: total bytes.
import { readFileSync } from "node:fs";
import { NodeIO } from "@gltf-transform/core";
import { ALL_EXTENSIONS } from "@gltf-transform/extensions";
import { draco, meshopt } from "@gltf-transform/functions";
import draco3d from "draco3d";
import { MeshoptEncoder, MeshoptDecoder } from "meshoptimizer";

await MeshoptEncoder.ready;
await MeshoptDecoder.ready;
const io = new NodeIO().registerExtensions(ALL_EXTENSIONS).registerDependencies({
  "draco3d.decoder": await draco3d.createDecoderModule(),
  "draco3d.encoder": await draco3d.createEncoderModule(),
  "meshopt.encoder": MeshoptEncoder,
  "meshopt.decoder": MeshoptDecoder,
});
const out = { draco: 0, meshopt: 0, files: 0 };
for (const file of process.argv.slice(2)) {
  const bytes = new Uint8Array(readFileSync(file));
  const a = await io.readBinary(bytes);
  await a.transform(draco());
  out.draco += (await io.writeBinary(a)).byteLength;
  const b = await io.readBinary(bytes);
  await b.transform(meshopt({ encoder: MeshoptEncoder }));
  out.meshopt += (await io.writeBinary(b)).byteLength;
  out.files += 1;
}
console.log(JSON.stringify(out));
