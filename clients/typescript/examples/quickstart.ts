import { readFileSync } from "node:fs";
import { createRetakeClient, EventKind } from "@retake/client";

const retake = createRetakeClient(process.env.RETAKE_SERVER ?? "http://127.0.0.1:50051");
const { run } = await retake.runs.startRun({ workflow: readFileSync("examples/hello.yaml", "utf8") });
for await (const { event } of retake.runs.watchRun({ runId: run!.id }))
  console.log(`${event!.sequence} ${EventKind[event!.kind]} ${event!.nodeId}`);
const replay = await retake.runs.replayRun({ runId: run!.id, swaps: [{ nodeId: "summarize_b", agent: "local://echo" }] });
const diff = await retake.runs.diffRuns({ runA: run!.id, runB: (await retake.waitForRun(replay.run!.id)).id });
for (const node of diff.nodes) console.log(node.nodeId, node.changed ? "changed" : "same");
