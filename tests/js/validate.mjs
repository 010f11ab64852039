// Validate every .glb under the given folders with the Khronos glTF validator.
// Prints one JSON line per file: {file, errors, warnings, messages}.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import validator from "gltf-validator";

function* glbs(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* glbs(p);
    else if (name.endsWith(".glb")) yield p;
  }
}

for (const root of process.argv.slice(2)) {
  for (const file of glbs(root)) {
    const report = await validator.validateBytes(new Uint8Array(readFileSync(file)), {
      maxIssues: 50,
    });
    const messages = report.issues.messages
      .filter((m) => m.severity <= 1)
      .map((m) => `${m.code}: ${m.message} (${m.pointer ?? ""})`);
    console.log(JSON.stringify({ file, errors: report.issues.numErrors,
      warnings: report.issues.numWarnings, messages }));
  }
}
