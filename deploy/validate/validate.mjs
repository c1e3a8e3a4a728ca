// Validates every document of the given Kubernetes manifests against the API's JSON schemas (kubernetes-models, generated from
// the Kubernetes OpenAPI document): unknown kinds, missing required fields, wrong types and unknown fields are errors.
// Usage: node validate.mjs FILE.yaml...   Exit 0 when all are valid; 1 with one line per problem otherwise.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const kinds = {
  "batch/v1/Job": () => import("kubernetes-models/batch/v1/Job"),
  "apps/v1/Deployment": () => import("kubernetes-models/apps/v1/Deployment"),
  "v1/Service": () => import("kubernetes-models/v1/Service"),
  "v1/ConfigMap": () => import("kubernetes-models/v1/ConfigMap"),
  "v1/Secret": () => import("kubernetes-models/v1/Secret"),
  "v1/PersistentVolumeClaim": () => import("kubernetes-models/v1/PersistentVolumeClaim"),
};

let problems = 0, checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) { for (const e of doc.errors) console.log(`${file}: YAML: ${e.message}`); problems += doc.errors.length; continue; }
    const obj = doc.toJS();
    if (obj == null) continue;
    const key = `${obj.apiVersion}/${obj.kind}`;
    const load = kinds[key];
    if (!load) { console.log(`${file}: ${key}: no schema here for this kind`); problems++; continue; }
    const mod = await load();
    const Model = mod[obj.kind] ?? mod.default;
    try { new Model(obj).validate(); checked++; }
    catch (e) {
      problems++;
      const details = (e.errors ?? []).map(x => `${x.instancePath || "/"} ${x.message}${x.params?.additionalProperty ? ` (${x.params.additionalProperty})` : ""}`);
      console.log(`${file}: ${key} ${obj.metadata?.name ?? ""}: ${details.length ? details.join("; ") : e.message}`);
    }
  }
}
console.log(`${checked} valid, ${problems} problems`);
process.exit(problems ? 1 : 0);
