// The browser build (src/web.ts, the package's "browser" and "./web"
// exports) against a real retake-server: the same client over gRPC-Web on
// fetch, as a page would use it. Node's fetch stands in for the browser's;
// the console's tests drive it in Chromium.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  Code,
  ConnectError,
  createRetakeClient,
  errorInfo,
  EventKind,
  RunStatus,
  type RetakeClient,
} from "../src/web.js";
import { EXAMPLES, startServer, type TestServer } from "./server.js";

const hello = readFileSync(join(EXAMPLES, "hello.yaml"), "utf8");
const ask = "name: ask\nnodes:\n  q: {agent: human://input, outputs: [answer]}\n";

let server: TestServer;
let retake: RetakeClient;

before(async () => {
  server = await startServer();
  retake = createRetakeClient(server.baseUrl);
});
after(async () => {
  await server?.stop();
});

describe("the browser build over gRPC-Web", () => {
  test("starts, watches and waits for a run", async () => {
    const { run } = await retake.runs.startRun({ workflow: hello });
    assert.ok(run?.id.startsWith("run_"));
    if (!run) return;
    const kinds: EventKind[] = [];
    for await (const { event } of retake.runs.watchRun({ runId: run.id })) {
      if (event) kinds.push(event.kind);
    }
    assert.equal(kinds.at(-1), EventKind.RUN_FINISHED);
    const done = await retake.waitForRun(run.id, { timeoutMs: 30_000 });
    assert.equal(done.status, RunStatus.COMPLETED);
  });

  test("takes the addresses the CLI takes", async () => {
    const bare = createRetakeClient(server.baseUrl.replace("http://", ""));
    const { runs } = await bare.runs.listRuns({ pageSize: 1 });
    assert.equal(runs.length, 1);
  });

  test("breaking out of a live watch ends the call", async () => {
    const { run } = await retake.runs.startRun({ workflow: ask });
    for await (const { event } of retake.runs.watchRun({ runId: run!.id })) {
      if (event?.kind === EventKind.WAIT_STARTED) break;
    }
    await retake.runs.cancelRun({ runId: run!.id });
    const ended = await retake.waitForRun(run!.id, { timeoutMs: 30_000 });
    assert.equal(ended.status, RunStatus.CANCELLED);
  });

  test("errors carry their reason", async () => {
    await assert.rejects(retake.runs.getRun({ runId: "run_nope" }), (e: unknown) => {
      assert.ok(e instanceof ConnectError);
      assert.equal(e.code, Code.NotFound);
      const info = errorInfo(e);
      assert.equal(info?.reason, "RUN_NOT_FOUND");
      assert.equal(info?.domain, "retake");
      assert.equal(info?.metadata.runId, "run_nope");
      return true;
    });
  });

  test("reads an artifact in chunks", async () => {
    const big = "x".repeat(3_000_000);
    const { run } = await retake.runs.startRun({
      workflow: 'name: big\nnodes:\n  a: {agent: local://echo, inputs: {text: "${user.big}"}, outputs: [result]}\n',
      variables: { big },
    });
    await retake.waitForRun(run!.id, { timeoutMs: 60_000 });
    const { artifacts } = await retake.artifacts.listArtifacts({ runId: run!.id });
    const result = artifacts.find((a) => a.nodeId === "a" && a.name === "result")!;
    const { content } = await retake.readArtifact(result.id);
    assert.ok(new TextDecoder().decode(content).includes(big));
  });
});
