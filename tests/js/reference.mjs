// The reference glTF compressor, glTF Transform (the library behind @gltf-transform/cli),
// run on OUP's own tiles: each glb is read (decoding its Draco), then written again with
// the CLI's defaults for `gltf-transform draco` and for `gltf-transform meshopt`.
// usage: node reference.mjs <glb>...   Prints {draco, meshopt, files}: total bytes, and
// {decodeDracoMs, decodeReferenceDracoMs, decodeMeshoptMs}: the time to decode OUP's
// Draco tiles, the reference's Draco and meshopt versions (with the draco3d and
// meshoptimizer WASM decoders that CesiumJS also uses).
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
const dracoDecoder = await draco3d.createDecoderModule();

function glb(bytes) {  // the JSON and the BIN chunk of a glb
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const jsonLength = view.getUint32(12, true);
  const json = JSON.parse(new TextDecoder().decode(bytes.subarray(20, 20 + jsonLength)));
  return { json, bin: bytes.subarray(20 + jsonLength + 8) };
}

function best(fn) {  // the faster of two runs: the first pays for warming up
  let ms = Infinity;
  for (let i = 0; i < 2; i++) {
    const t = performance.now();
    fn();
    ms = Math.min(ms, performance.now() - t);
  }
  return ms;
}

function timeDraco(bytes) {  // decode every Draco mesh and all its attributes
  const { json, bin } = glb(bytes);
  return best(() => {
    for (const mesh of json.meshes) for (const p of mesh.primitives) {
      const ext = p.extensions.KHR_draco_mesh_compression;
      const bv = json.bufferViews[ext.bufferView];
      const data = bin.subarray(bv.byteOffset ?? 0, (bv.byteOffset ?? 0) + bv.byteLength);
      const decoder = new dracoDecoder.Decoder();
      const m = new dracoDecoder.Mesh();
      decoder.DecodeArrayToMesh(data, data.byteLength, m);
      const M = dracoDecoder;  // bulk copies into WASM memory, as CesiumJS's decoder does
      for (const id of Object.values(ext.attributes)) {
        const a = decoder.GetAttributeByUniqueId(m, id);
        const size = m.num_points() * a.num_components() * 4;
        const ptr = M._malloc(size);
        decoder.GetAttributeDataArrayForAllPoints(m, a, M.DT_FLOAT32, size, ptr);
        M._free(ptr);
      }
      const size = m.num_faces() * 3 * 4;
      const ptr = M._malloc(size);
      decoder.GetTrianglesUInt32Array(m, size, ptr);
      M._free(ptr);
      dracoDecoder.destroy(m);
      dracoDecoder.destroy(decoder);
    }
  });
}

function timeMeshopt(bytes) {  // decode every meshopt-compressed buffer view
  const { json, bin } = glb(bytes);
  return best(() => {
    for (const bv of json.bufferViews) {
      const ext = bv.extensions?.EXT_meshopt_compression;
      if (!ext) continue;
      const src = bin.subarray(ext.byteOffset ?? 0, (ext.byteOffset ?? 0) + ext.byteLength);
      const target = new Uint8Array(ext.count * ext.byteStride);
      MeshoptDecoder.decodeGltfBuffer(target, ext.count, ext.byteStride, src, ext.mode,
                                      ext.filter ?? "NONE");
    }
  });
}

const out = { draco: 0, meshopt: 0, files: 0, decodeDracoMs: 0, decodeReferenceDracoMs: 0,
              decodeMeshoptMs: 0 };
for (const file of process.argv.slice(2)) {
  const bytes = new Uint8Array(readFileSync(file));
  const a = await io.readBinary(bytes);
  await a.transform(draco());
  const ref = await io.writeBinary(a);
  out.draco += ref.byteLength;
  out.decodeReferenceDracoMs += timeDraco(ref);
  const b = await io.readBinary(bytes);
  await b.transform(meshopt({ encoder: MeshoptEncoder }));
  const packed = await io.writeBinary(b);
  out.meshopt += packed.byteLength;
  out.decodeDracoMs += timeDraco(bytes);
  out.decodeMeshoptMs += timeMeshopt(packed);
  out.files += 1;
}
console.log(JSON.stringify(out));
