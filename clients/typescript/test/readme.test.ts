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

async function quickstart(retakeServer: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)(process.execPath, [join(pkg, "dist", "examples", "quickstart.js")], {
    cwd: REPO,
    env: { ...process.env, RETAKE_SERVER: retakeServer },
    timeout: 120_000,
  });
  return stdout.trimEnd().split("\n");
}

test("the README names every method of the Python client", () => {
  const section = readFileSync(join(REPO, "README.md"), "utf8").split("## From other languages")[1].split("\n## ")[0];
  const client = readFileSync(join(REPO, "clients", "python", "retake_client", "client.py"), "utf8");
  const methods = [...client.matchAll(/^    def ([a-z]\w*)\(/gm)].map((m) => m[1]);
  assert.ok(methods.length >= 10, `methods of Client: ${methods}`);
  const missing = methods.filter((m) => !section.includes(`\`${m}\``));
  assert.deepEqual(missing, [], "Python client methods missing from README's 'From other languages'");
});

test("the quickstart runs as printed", async () => {
  const lines = await quickstart(server.baseUrl);
  assert.equal(lines[0], "1 RUN_STARTED ");
  assert.ok(lines.some((l) => / RUN_FINISHED $/.test(l)), lines.join("\n"));
  assert.deepEqual(lines.slice(-4), ["fetch same", "summarize_a same", "summarize_b changed", "publish changed"]);
});

test("the quickstart takes RETAKE_SERVER as HOST:PORT, like the CLI", async () => {
  const lines = await quickstart(server.baseUrl.replace(/^http:\/\//, ""));
  assert.equal(lines[0], "1 RUN_STARTED ");
  assert.deepEqual(lines.slice(-4), ["fetch same", "summarize_a same", "summarize_b changed", "publish changed"]);
});
