// Builds the console into dist/ (or the directory given): index.html,
// assets/app.js and assets/app.css. Same sources, same bytes: the bundle
// is committed and CI rebuilds it to compare (scripts/build-console --check).
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "dist"));
mkdirSync(join(out, "assets"), { recursive: true });

await esbuild.build({
  entryPoints: [join(here, "src/main.tsx")],
  outfile: join(out, "assets/app.js"),
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "none",
  jsx: "automatic",
  jsxImportSource: "preact",
  // The generated code lives in the TypeScript client's tree and imports
  // the protobuf runtime: it resolves from here, so there is one copy.
  nodePaths: [join(here, "node_modules")],
  logLevel: "warning",
});
await esbuild.build({
  entryPoints: [join(here, "src/app.css")],
  outfile: join(out, "assets/app.css"),
  bundle: true,
  minify: true,
  logLevel: "warning",
});
copyFileSync(join(here, "src/index.html"), join(out, "index.html"));
