// The retake gRPC API for TypeScript: the code protoc-gen-es generated from
// proto/retake/v1 (src/gen), and one function that connects the three
// services over HTTP/2 gRPC with an optional bearer token.
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  Code,
  ConnectError,
  createClient,
  type CallOptions,
  type Client,
  type Interceptor,
} from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { ArtifactService } from "./gen/retake/v1/artifact_pb.js";
import { ExperimentService, type GetExperimentResponse } from "./gen/retake/v1/experiment_pb.js";
import { RunStatus, type Artifact, type Run } from "./gen/retake/v1/common_pb.js";
import { RunService } from "./gen/retake/v1/run_pb.js";
import { WorkflowService } from "./gen/retake/v1/workflow_pb.js";
import { serverUrl } from "./url.js";

export * from "./gen/retake/v1/artifact_pb.js";
export * from "./gen/retake/v1/common_pb.js";
export * from "./gen/retake/v1/experiment_pb.js";
export * from "./gen/retake/v1/run_pb.js";
export * from "./gen/retake/v1/workflow_pb.js";
export * from "./gen/retake/v1/worker_pb.js";
export { serverUrl } from "./url.js";
export { createWorker, RetakeWorker, TransientError, type Handler, type Task, type WorkerOptions } from "./worker.js";
export { Code, ConnectError } from "@connectrpc/connect";

export interface RetakeClient {
  runs: Client<typeof RunService>;
  artifacts: Client<typeof ArtifactService>;
  workflows: Client<typeof WorkflowService>;
  experiments: Client<typeof ExperimentService>;
  /**
   * Resolves with the run once it is COMPLETED, FAILED or CANCELLED.
   * Rejects with DEADLINE_EXCEEDED after `timeoutMs`, and with CANCELED
   * once `signal` aborts.
   */
  waitForRun(runId: string, options?: WaitOptions): Promise<Run>;
  /** Resolves once the experiment has finished, with its comparison. */
  waitForExperiment(experimentId: string, options?: WaitOptions): Promise<GetExperimentResponse>;
  /**
   * An artifact's metadata and content (or `limit` bytes of it from
   * `offset`), read in chunks: any size, where GetArtifact sends only what
   * fits one message.
   */
  readArtifact(
    artifactId: string,
    range?: { offset?: bigint; limit?: bigint },
  ): Promise<{ artifact: Artifact; content: Uint8Array }>;
}

export interface WaitOptions {
  /** Give up after this many milliseconds (DEADLINE_EXCEEDED). */
  timeoutMs?: number;
  /** Give up when this aborts (CANCELED). */
  signal?: AbortSignal;
}

export interface ConnectOptions {
  /** Sent as `authorization: Bearer TOKEN` on every call. */
  token?: string;
  /** More interceptors, run after the token one. */
  interceptors?: Interceptor[];
}

const FINISHED = new Set([RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED]);

/** The largest message the server takes and sends (retake-server's default). */
const MESSAGE_LIMIT = 64 * 1024 * 1024;

/** Calls that carry a requestId, which makes sending them again safe. */
const NAMED_REQUESTS = new Set(["StartRun", "ReplayRun"]);
/** Pauses before each new attempt while the server is UNAVAILABLE. */
const RETRY_PAUSES_MS = [250, 1000, 4000];

/**
 * StartRun and ReplayRun name themselves (`requestId`, a fresh UUID unless
 * the caller set one) and are sent again while the server is UNAVAILABLE:
 * the server answers a retry with the run the first attempt stored, so a
 * lost reply never starts a second run.
 */
const namedAndRetried: Interceptor = (next) => async (req) => {
  if (req.stream || !NAMED_REQUESTS.has(req.method.name)) {
    return next(req);
  }
  const message = req.message as { requestId?: string };
  if (!message.requestId) {
    message.requestId = randomUUID();
  }
  for (const pause of RETRY_PAUSES_MS) {
    try {
      return await next(req);
    } catch (e) {
      if (!(e instanceof ConnectError) || e.code !== Code.Unavailable) {
        throw e;
      }
      await sleep(pause);
    }
  }
  return next(req);
};

/**
 * Connects to a retake server: `createRetakeClient("127.0.0.1:50051")`, or
 * with a scheme, `http://127.0.0.1:50051` or `https://retake.example:443`.
 */
export function createRetakeClient(server: string, options: ConnectOptions = {}): RetakeClient {
  const baseUrl = serverUrl(server);
  // Outermost: a retry goes through every other interceptor again.
  const interceptors: Interceptor[] = [namedAndRetried];
  if (options.token) {
    const header = `Bearer ${options.token}`;
    interceptors.push((next) => (req) => {
      req.header.set("authorization", header);
      return next(req);
    });
  }
  interceptors.push(...(options.interceptors ?? []));
  // The server's limit (64 MiB), not 4 MiB: a run with large variables
  // comes back whole.
  const transport = createGrpcTransport({
    baseUrl,
    interceptors,
    readMaxBytes: MESSAGE_LIMIT,
    writeMaxBytes: MESSAGE_LIMIT,
  });
  const artifacts = createClient(ArtifactService, transport);
  const generatedRuns = createClient(RunService, transport);
  const generatedExperiments = createClient(ExperimentService, transport);
  const runs = { ...generatedRuns, watchRun: endedOnBreak(generatedRuns.watchRun) };
  const experiments = {
    ...generatedExperiments,
    watchExperiment: endedOnBreak(generatedExperiments.watchExperiment),
  };
  return {
    runs,
    artifacts,
    workflows: createClient(WorkflowService, transport),
    experiments,
    async waitForExperiment(experimentId: string, options: WaitOptions = {}): Promise<GetExperimentResponse> {
      const call = callOptions(options);
      for await (const _ of experiments.watchExperiment({ experimentId }, call())) {
        // The stream ends when the experiment does.
      }
      return experiments.getExperiment({ experimentId, includeComparison: true }, call());
    },
    async readArtifact(artifactId, range = {}) {
      let artifact: Artifact | undefined;
      const parts: Uint8Array[] = [];
      for await (const chunk of artifacts.readArtifact({ artifactId, ...range })) {
        artifact ??= chunk.artifact;
        parts.push(chunk.data);
      }
      if (!artifact) throw new Error(`ReadArtifact sent no metadata for ${artifactId}`);
      const content = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        content.set(p, at);
        at += p.length;
      }
      return { artifact, content };
    },
    async waitForRun(runId: string, options: WaitOptions = {}): Promise<Run> {
      const call = callOptions(options);
      let { run } = await runs.getRun({ runId }, call());
      if (run && !FINISHED.has(run.status)) {
        for await (const _ of runs.watchRun({ runId: run.id }, call())) {
          // The stream ends when the run does.
        }
        ({ run } = await runs.getRun({ runId: run.id }, call()));
      }
      if (!run) throw new Error(`GetRun returned no run for ${runId}`);
      return run;
    },
  };
}

/** Each call's options: the signal, and what is left of the timeout. */
function callOptions({ timeoutMs, signal }: WaitOptions): () => CallOptions {
  const deadline = timeoutMs === undefined ? undefined : Date.now() + timeoutMs;
  return () => ({
    signal,
    timeoutMs: deadline === undefined ? undefined : Math.max(1, deadline - Date.now()),
  });
}

/**
 * A server stream that ends its call when the caller stops reading
 * (`break` out of `for await`, a `return` or a throw in its body): without
 * this the HTTP/2 stream stays open, unread, and keeps Node running.
 */
function endedOnBreak<Req, Res>(
  call: (request: Req, options?: CallOptions) => AsyncIterable<Res>,
): (request: Req, options?: CallOptions) => AsyncIterable<Res> {
  return (request, options = {}) => {
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const stream = call(request, { ...options, signal });
    return (async function* () {
      try {
        yield* stream;
      } finally {
        stop.abort();
      }
    })();
  };
}
