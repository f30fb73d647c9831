// TypeScript workers against a real retake-server: a handler runs a step
// and streams text, an error fails the node with its stack, a transient
// one is retried, and a worker with a wrong token is refused.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  Code,
  ConnectError,
  createRetakeClient,
  createWorker,
  RunStatus,
  TransientError,
  type RetakeClient,
  type RetakeWorker,
  type Task,
} from "../src/index.js";
import { startServer, type TestServer } from "./server.js";

let server: TestServer;
let retake: RetakeClient;

before(async () => {
  server = await startServer();
  retake = createRetakeClient(server.baseUrl);
});
after(async () => {
  await server?.stop();
});

async function serving<T>(worker: RetakeWorker, body: () => Promise<T>): Promise<T> {
  const running = worker.run();
  try {
    return await body();
  } finally {
    worker.stop();
    await running;
  }
}

async function output(artifactId: string): Promise<string> {
  const res = await retake.artifacts.getArtifact({ artifactId });
  return new TextDecoder().decode(res.content);
}

test("a handler runs a step; its value is the node's output", async () => {
  const seen: Task[] = [];
  const worker = createWorker(server.baseUrl, { name: "ts-worker", concurrency: 2 }).agent("shout", async (task) => {
    seen.push(task);
    task.emit("…");
    return (task.inputs.text as { topic: string }).topic.toUpperCase();
  });
  const run = await serving(worker, async () => {
    const { run } = await retake.runs.startRun({
      workflow:
        "name: ts\nnodes:\n  fetch: {agent: local://echo, inputs: {topic: rust}, outputs: [result]}\n" +
        "  shout: {agent: worker://shout, inputs: {text: '${fetch.result}'}, outputs: [result], depends_on: [fetch]}\n",
    });
    return retake.waitForRun(run!.id);
  });
  assert.equal(run.status, RunStatus.COMPLETED);
  const { nodes } = await retake.runs.getRun({ runId: run.id, includeNodes: true });
  const shout = nodes.find((n) => n.nodeId === "shout")!;
  assert.equal(await output(shout.outputArtifactIds[0]), "RUST");
  assert.equal(shout.attempts[0].worker, "ts-worker");
  assert.deepEqual(seen[0].upstream.fetch.result, { topic: "rust" });
  assert.equal(seen[0].attempt, 1);
});

test("an error fails the node with its stack; a transient one is retried", async () => {
  const attempts: number[] = [];
  const worker = createWorker(server.baseUrl).agent("fragile", (task) => {
    attempts.push(task.attempt);
    if (task.attempt === 1) throw new TransientError("index rebuilding");
    throw new RangeError("no such page");
  });
  const run = await serving(worker, async () => {
    const { run } = await retake.runs.startRun({
      workflow:
        "name: e\nnodes:\n  look:\n    agent: worker://fragile\n    outputs: [result]\n" +
        "    retry_policy: {max_retries: 5, backoff: fixed, initial_delay_ms: 1}\n",
    });
    return retake.waitForRun(run!.id);
  });
  assert.equal(run.status, RunStatus.FAILED);
  assert.deepEqual(attempts, [1, 2]);
  const { nodes } = await retake.runs.getRun({ runId: run.id, includeNodes: true });
  assert.match(nodes[0].error, /RangeError: no such page/);
  assert.match(nodes[0].error, /worker\.test/);
});

test("a worker with a wrong token is refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "retake-ts-token-"));
  const tokenFile = join(dir, "token");
  writeFileSync(tokenFile, "right");
  const guarded = await startServer("--auth-token-file", tokenFile);
  try {
    const worker = createWorker(guarded.baseUrl, { token: "wrong" }).agent("x", () => "x");
    await assert.rejects(worker.run(), (e: unknown) => ConnectError.from(e).code === Code.Unauthenticated);
  } finally {
    await guarded.stop();
  }
});
