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

// The client and its generated code live in the TypeScript client's tree,
// so esbuild would take the protobuf and Connect runtimes they import from
// clients/typescript's node_modules whenever those are installed: two
// copies in the bundle, and a bundle that depends on what else is
// installed. Every import of the runtimes resolves from the console's own
// node_modules instead.
const runtimeFromHere = {
  name: "protobuf-runtime-from-console",
  setup(build) {
    build.onResolve({ filter: /^@(bufbuild\/protobuf|connectrpc\/[a-z-]+)(\/|$)/ }, (args) =>
      args.pluginData === here
        ? undefined
        : build.resolve(args.path, { kind: args.kind, resolveDir: here, pluginData: here }),
    );
  },
};

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
  plugins: [runtimeFromHere],
  // The options above are the whole configuration: tsconfig.json's `paths`
  // are for the type checker, and would make esbuild load the runtime's
  // CommonJS entry point next to its ES modules.
  tsconfigRaw: {},
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
