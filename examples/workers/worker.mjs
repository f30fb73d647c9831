// A TypeScript (plain JavaScript) worker serving `worker://score`: build the
// client once (cd clients/typescript && npm ci && npm run build), then run
// node examples/workers/worker.mjs [HOST:PORT].
import { createWorker } from "../../clients/typescript/dist/src/index.js";

const server = process.argv[2] ?? "127.0.0.1:50051";

await createWorker(server, { concurrency: 4 })
  .agent("score", async (task) => {
    const summary = String(task.inputs.summary ?? "");
    const notes = String(task.inputs.notes ?? "");
    // A toy score: how many of the notes' words the summary kept.
    const words = new Set(notes.toLowerCase().match(/[a-z]{4,}/g) ?? []);
    const kept = (summary.toLowerCase().match(/[a-z]{4,}/g) ?? []).filter((w) => words.has(w));
    const score = words.size ? Math.min(1, new Set(kept).size / words.size) : 0;
    return { score, verdict: score >= 0.3 ? "faithful" : "thin" };
  })
  .run();
