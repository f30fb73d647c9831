// The README's TypeScript example is examples/quickstart.ts, and (compiled
// by tsc) it runs as printed against a real server.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import { REPO, startServer, type TestServer } from "./server.js";

const pkg = join(REPO, "clients", "typescript");
let server: TestServer;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("the README's TypeScript example is examples/quickstart.ts", () => {
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const section = readme.split("## From other languages")[1];
  assert.ok(section, "README.md has no '## From other languages' section");
  const block = /```ts\n([\s\S]*?)```/.exec(section);
  assert.ok(block, "no ```ts block in README's 'From other languages'");
  assert.equal(block[1], readFileSync(join(pkg, "examples", "quickstart.ts"), "utf8"));
});

test("the quickstart runs as printed", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [join(pkg, "dist", "examples", "quickstart.js")], {
    cwd: REPO,
    env: { ...process.env, RETAKE_SERVER: server.baseUrl },
    timeout: 120_000,
  });
  const lines = stdout.trimEnd().split("\n");
  assert.equal(lines[0], "1 RUN_STARTED ");
  assert.ok(lines.some((l) => / RUN_FINISHED $/.test(l)), stdout);
  assert.deepEqual(lines.slice(-4), ["fetch same", "summarize_a same", "summarize_b changed", "publish changed"]);
});
