// The generated TypeScript client against a real retake-server, through
// @connectrpc/connect-node's gRPC transport: runs and their event streams,
// replay with an agent swap and an output override, diff, human waits, and
// the status codes a caller has to handle.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  ArtifactOrigin,
  Code,
  ConnectError,
  createRetakeClient,
  EventKind,
  ExperimentStatus,
  NodeStatus,
  RunStatus,
  WaitKind,
  type Event,
  type NodeExecution,
  type RetakeClient,
} from "../src/index.js";
import type { Interceptor } from "@connectrpc/connect";
import { EXAMPLES, startServer, type TestServer } from "./server.js";

const hello = readFileSync(join(EXAMPLES, "hello.yaml"), "utf8");
const reportPipeline = readFileSync(join(EXAMPLES, "report-pipeline.yaml"), "utf8");

let server: TestServer;
let retake: RetakeClient;

before(async () => {
  server = await startServer();
  retake = createRetakeClient(server.baseUrl);
});
after(async () => {
  await server?.stop();
});

async function runToEnd(workflow: string, variables: Record<string, string> = {}) {
  const { run } = await retake.runs.startRun({ workflow, variables });
  return retake.waitForRun(run!.id);
}

async function nodes(runId: string): Promise<Map<string, NodeExecution>> {
  const { nodes } = await retake.runs.getRun({ runId, includeNodes: true });
  return new Map(nodes.map((n) => [n.nodeId, n]));
}

async function outputText(node: NodeExecution | undefined): Promise<string> {
  assert.equal(node?.outputArtifactIds.length, 1, `one output artifact for ${node?.nodeId}`);
  const { content } = await retake.artifacts.getArtifact({ artifactId: node!.outputArtifactIds[0] });
  return new TextDecoder().decode(content);
}

async function rejects(call: () => Promise<unknown>, code: Code): Promise<ConnectError> {
  try {
    await call();
  } catch (e) {
    const err = ConnectError.from(e);
    assert.equal(err.code, code, `expected ${Code[code]}, got ${Code[err.code]}: ${err.rawMessage}`);
    return err;
  }
  assert.fail(`expected ${Code[code]}, the call succeeded`);
}

describe("runs", () => {
  test("a run streams every event to the end", async () => {
    const { run } = await retake.runs.startRun({ workflow: hello });
    assert.match(run!.id, /^run_/);
    assert.equal(run!.workflowName, "hello");

    const events: Event[] = [];
    for await (const { event } of retake.runs.watchRun({ runId: run!.id })) events.push(event!);

    assert.deepEqual(
      events.map((e) => e.sequence),
      events.map((_, i) => BigInt(i + 1)),
    );
    assert.equal(events[0].kind, EventKind.RUN_STARTED);
    assert.equal(events.at(-1)!.kind, EventKind.RUN_FINISHED);
    assert.equal(events.at(-1)!.runStatus, RunStatus.COMPLETED);
    const completed = new Set(events.filter((e) => e.kind === EventKind.NODE_COMPLETED).map((e) => e.nodeId));
    assert.deepEqual(completed, new Set(["fetch", "summarize_a", "summarize_b", "publish"]));

    const final = await retake.waitForRun(run!.id);
    assert.equal(final.status, RunStatus.COMPLETED);
    assert.deepEqual([final.counts!.total, final.counts!.completed, final.counts!.failed], [4, 4, 0]);

    // Resuming after a sequence number gives the rest, without gaps or repeats.
    const rest: bigint[] = [];
    for await (const { event } of retake.runs.watchRun({ runId: run!.id, afterSequence: 2n })) rest.push(event!.sequence);
    assert.deepEqual(rest, events.slice(2).map((e) => e.sequence));
  });

  test("variables fill ${user.NAME}", async () => {
    const final = await runToEnd(reportPipeline, { topic: "durable execution" });
    assert.equal(final.status, RunStatus.COMPLETED);
    assert.deepEqual(final.variables, { topic: "durable execution" });
    assert.deepEqual(JSON.parse(await outputText((await nodes(final.id)).get("fetch"))), { topic: "durable execution" });
  });
});

describe("replay and diff", () => {
  test("replay with an agent swap and an output override", async () => {
    const source = await runToEnd(reportPipeline, { topic: "replay" });
    assert.equal(source.status, RunStatus.COMPLETED);

    const { run: replay } = await retake.runs.replayRun({
      runId: source.id,
      swaps: [{ nodeId: "transform", agent: "local://echo" }],
      overrides: [{ selector: "review", value: "approved by a human" }],
    });
    assert.notEqual(replay!.id, source.id);
    assert.equal(replay!.replay?.forkedFrom, source.id);
    const final = await retake.waitForRun(replay!.id);
    assert.equal(final.status, RunStatus.COMPLETED);
    assert.deepEqual(
      final.replay!.swaps.map((s) => [s.nodeId, s.agent]),
      [["transform", "local://echo"]],
    );

    const got = await nodes(final.id);
    const before = await nodes(source.id);
    assert.equal(got.get("fetch")!.status, NodeStatus.REUSED);
    assert.deepEqual(got.get("fetch")!.outputArtifactIds, before.get("fetch")!.outputArtifactIds);
    assert.equal(got.get("transform")!.status, NodeStatus.COMPLETED);
    assert.equal(got.get("transform")!.agent, "local://echo");
    assert.deepEqual(Object.keys(JSON.parse(await outputText(got.get("transform")))), ["data"]);
    const review = await retake.artifacts.getArtifact({ artifactId: got.get("review")!.outputArtifactIds[0] });
    assert.equal(new TextDecoder().decode(review.content), "approved by a human");
    assert.equal(review.artifact!.origin, ArtifactOrigin.OVERRIDE);
    // "approved by a human" != "approved": publish's `when` is false now.
    assert.equal(got.get("publish")!.status, NodeStatus.SKIPPED);
  });

  test("diff shows what the replay changed", async () => {
    const source = await runToEnd(hello);
    const { run } = await retake.runs.replayRun({
      runId: source.id,
      swaps: [{ nodeId: "summarize_b", agent: "local://echo" }],
    });
    const replay = await retake.waitForRun(run!.id);

    const diff = await retake.runs.diffRuns({ runA: source.id, runB: replay.id });

    assert.equal(diff.runA!.id, source.id);
    assert.equal(diff.runB!.id, replay.id);
    const byNode = new Map(diff.nodes.map((n) => [n.nodeId, n]));
    assert.deepEqual(new Set(byNode.keys()), new Set(["fetch", "summarize_a", "summarize_b", "publish"]));
    const changed = byNode.get("summarize_b")!;
    assert.ok(changed.changed);
    assert.deepEqual([changed.agentA, changed.agentB], ["local://mock", "local://echo"]);
    assert.ok(changed.outputs[0].changed && changed.outputs[0].textDiff.length > 0);
    assert.equal(byNode.get("fetch")!.changed, false);
    assert.equal(byNode.get("summarize_a")!.changed, false);
    assert.equal(byNode.get("publish")!.changed, true);
    assert.deepEqual([diff.summary!.changed, diff.summary!.unchanged], [2, 2]);
  });
});

// Human waits: a human://input node waits until ResolveWait answers it.
const humanInput = `
name: ask-a-human
nodes:
  ask:
    agent: human://input
    system_prompt: "Which colour?"
    outputs: [answer]
  use:
    agent: local://echo
    inputs: {colour: "\${ask.answer}"}
    outputs: [result]
    depends_on: [ask]
`;

describe("experiments", () => {
  test("an experiment replays a workflow's runs with one swap and compares them", async () => {
    const sources = [];
    for (let i = 0; i < 3; i++) sources.push((await runToEnd(reportPipeline, { topic: `e${i}` })).id);
    const { experiment } = await retake.experiments.startExperiment({
      name: "echo transform",
      selection: { runIds: sources },
      change: { swaps: [{ nodeId: "transform", agent: "local://echo" }] },
    });
    assert.match(experiment!.id, /^exp_/);
    const { experiment: done, comparison } = await retake.waitForExperiment(experiment!.id);
    assert.equal(done!.status, ExperimentStatus.COMPLETED);
    assert.equal(done!.progress!.completed, 3);
    const byNode = new Map(comparison!.nodes.map((n) => [n.nodeId, n]));
    assert.equal(byNode.get("fetch")!.reused, 3);
    assert.equal(byNode.get("transform")!.changed, 3);
    assert.deepEqual(new Set(comparison!.pairs.map((p) => p.firstDivergence)), new Set(["transform"]));
  });
});

describe("human waits", () => {
  test("a human://input wait is resolved by the client", async () => {
    const { run } = await retake.runs.startRun({ workflow: humanInput });
    const runId = run!.id;
    const seen: Event[] = [];
    for await (const { event } of retake.runs.watchRun({ runId })) {
      seen.push(event!);
      assert.notEqual(event!.kind, EventKind.RUN_FINISHED, "the run finished without waiting");
      if (event!.kind === EventKind.WAIT_STARTED) break;
    }
    const wait = seen.at(-1)!;
    assert.equal(wait.nodeId, "ask");
    assert.match(wait.message, /Which colour\?/);

    const { waits } = await retake.runs.listWaits({ runId });
    assert.deepEqual(
      waits.map((w) => [w.nodeId, w.kind]),
      [["ask", WaitKind.INPUT]],
    );
    assert.equal((await retake.runs.getRun({ runId })).run!.status, RunStatus.WAITING);

    const resolved = await retake.runs.resolveWait({ runId, value: "blue" });
    assert.equal(resolved.wait!.nodeId, "ask");

    const rest: Event[] = [];
    for await (const { event } of retake.runs.watchRun({ runId, afterSequence: wait.sequence })) rest.push(event!);
    assert.ok(rest.some((e) => e.kind === EventKind.WAIT_RESOLVED));
    assert.equal(rest.at(-1)!.kind, EventKind.RUN_FINISHED);
    const final = await retake.waitForRun(runId);
    assert.equal(final.status, RunStatus.COMPLETED);
    assert.deepEqual((await retake.runs.listWaits({ runId })).waits, []);
    assert.deepEqual(JSON.parse(await outputText((await nodes(runId)).get("use"))), { colour: "blue" });
  });
});

describe("errors", () => {
  test("an unknown run is NOT_FOUND with the CLI's message", async () => {
    const calls: Array<() => Promise<unknown>> = [
      () => retake.runs.getRun({ runId: "run_x" }),
      async () => {
        for await (const _ of retake.runs.watchRun({ runId: "run_x" })) {
          // no events expected
        }
      },
      () => retake.runs.replayRun({ runId: "run_x", from: "fetch" }),
    ];
    for (const call of calls) {
      const err = await rejects(call, Code.NotFound);
      assert.equal(err.rawMessage, "Run 'run_x' not found");
    }
  });

  test("a bad workflow is INVALID_ARGUMENT", async () => {
    const bad = "name: broken\nnodes:\n  a:\n    agent: local://echo\n    outputs: [result]\n    depends_on: [missing]\n";
    const err = await rejects(() => retake.runs.startRun({ workflow: bad }), Code.InvalidArgument);
    assert.match(err.rawMessage, /missing/);
  });
});

describe("auth", () => {
  test("a bearer token is sent on every call", async () => {
    const dir = mkdtempSync(join(tmpdir(), "retake-token-"));
    writeFileSync(join(dir, "token"), "s3cret\n");
    const authed = await startServer("--auth-token-file", join(dir, "token"));
    try {
      await rejects(() => createRetakeClient(authed.baseUrl).runs.getRun({ runId: "latest" }), Code.Unauthenticated);
      const wrong = createRetakeClient(authed.baseUrl, { token: "wrong" });
      await rejects(() => wrong.runs.startRun({ workflow: hello }), Code.Unauthenticated);
      const ok = createRetakeClient(authed.baseUrl, { token: "s3cret" });
      const { run } = await ok.runs.startRun({ workflow: hello });
      let last = 0n;
      for await (const { event } of ok.runs.watchRun({ runId: run!.id })) last = event!.sequence;
      assert.ok(last > 1n);
      assert.equal((await ok.waitForRun(run!.id)).status, RunStatus.COMPLETED);
    } finally {
      await authed.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("retries", () => {
  test("a start or replay whose reply was lost is sent again without a second run", async () => {
    const sent: string[] = [];
    // Passes each call on, then loses the first reply, as a dropped
    // connection would after the server stored the run.
    const loseFirstReply: Interceptor = (next) => async (req) => {
      const res = await next(req);
      if (req.method.name === "StartRun" || req.method.name === "ReplayRun") {
        sent.push((req.message as unknown as { requestId: string }).requestId);
        if (sent.length === 1) throw new ConnectError("connection reset (simulated)", Code.Unavailable);
      }
      return res;
    };
    const lossy = createRetakeClient(server.baseUrl, { interceptors: [loseFirstReply] });
    const count = async () => (await retake.runs.listRuns({ pageSize: 1000 })).runs.length;
    const before = await count();
    const { run } = await lossy.runs.startRun({ workflow: hello });
    assert.equal(sent.length, 2);
    assert.ok(sent[0] && sent[0] === sent[1], `one request id: ${sent}`);
    assert.equal(await count(), before + 1);
    assert.equal((await lossy.waitForRun(run!.id)).status, RunStatus.COMPLETED);
    const again = await lossy.runs.startRun({ workflow: hello, requestId: sent[0] });
    assert.equal(again.run!.id, run!.id);
  });
});

describe("ending calls", () => {
  // A run long enough to outlast every check here: 120 steps of 500 ms.
  const long =
    "name: long\nnodes:\n" +
    Array.from(
      { length: 120 },
      (_, i) =>
        `  s${i}:\n    agent: local://sleep\n    config: {ms: 500}\n    inputs: {i: "${i}"}\n    outputs: [r]\n` +
        (i ? `    depends_on: [s${i - 1}]\n` : ""),
    ).join("");

  test("breaking out of a live watch ends the call, so Node can exit", async () => {
    const { run } = await retake.runs.startRun({ workflow: long });
    const dir = mkdtempSync(join(tmpdir(), "retake-break-"));
    const script = join(dir, "break.mjs");
    const index = new URL("../src/index.js", import.meta.url).href;
    writeFileSync(
      script,
      `import { createRetakeClient } from ${JSON.stringify(index)};
const c = createRetakeClient(${JSON.stringify(server.baseUrl)});
for await (const { event } of c.runs.watchRun({ runId: ${JSON.stringify(run!.id)} })) {
  if (event) break;
}
console.log("broke out");`,
    );
    const { spawnSync } = await import("node:child_process");
    // The run goes on for a minute: a call left open would keep the child
    // running until it is killed.
    const child = spawnSync(process.execPath, [script], { timeout: 20_000, encoding: "utf8" });
    rmSync(dir, { recursive: true, force: true });
    await retake.runs.cancelRun({ runId: run!.id });
    assert.equal(child.signal, null, "the child was killed: the call kept it running");
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout.trim(), "broke out");
  });

  test("waitForRun gives up after its timeout and when its signal aborts", async () => {
    const { run } = await retake.runs.startRun({ workflow: long });
    try {
      await rejects(() => retake.waitForRun(run!.id, { timeoutMs: 300 }), Code.DeadlineExceeded);
      const stop = new AbortController();
      const waiting = retake.waitForRun(run!.id, { signal: stop.signal });
      setTimeout(() => stop.abort(), 300);
      await rejects(() => waiting, Code.Canceled);
    } finally {
      await retake.runs.cancelRun({ runId: run!.id });
    }
  });
});

describe("large artifacts", () => {
  test("a 5 MB artifact is read whole, and a range of it", async () => {
    const big = Array.from({ length: 5_000_000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join("");
    const workflow = 'name: big\nnodes:\n  a: {agent: local://echo, inputs: {text: "${user.big}"}, outputs: [result]}\n';
    const { run } = await retake.runs.startRun({ workflow, variables: { big } });
    await retake.waitForRun(run!.id);
    const { artifacts } = await retake.artifacts.listArtifacts({ runId: run!.id });
    const id = artifacts.find((a) => a.nodeId === "a" && a.name === "result")!.id;
    await rejects(() => retake.artifacts.getArtifact({ artifactId: id }), Code.FailedPrecondition);
    const { artifact, content } = await retake.readArtifact(id);
    assert.equal(BigInt(content.length), artifact.sizeBytes);
    assert.ok(new TextDecoder().decode(content).includes(big));
    const part = await retake.readArtifact(id, { offset: 10n, limit: 5n });
    assert.deepEqual(part.content, content.slice(10, 15));
  });
});

