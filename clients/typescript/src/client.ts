// What the Node and the browser builds share: the client over any
// transport, with StartRun and ReplayRun named and retried, streams that
// end when the caller stops reading, and the waits and reads people write
// by hand. Nothing here is Node's or the browser's own.
import {
  Code,
  ConnectError,
  createClient,
  type CallOptions,
  type Client,
  type Interceptor,
  type Transport,
} from "@connectrpc/connect";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { ArtifactService } from "./gen/retake/v1/artifact_pb.js";
import { ExperimentService, type GetExperimentResponse } from "./gen/retake/v1/experiment_pb.js";
import { RunStatus, type Artifact, type Run } from "./gen/retake/v1/common_pb.js";
import { RunService } from "./gen/retake/v1/run_pb.js";
import { WorkflowService } from "./gen/retake/v1/workflow_pb.js";

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
export const MESSAGE_LIMIT = 64 * 1024 * 1024;

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
    message.requestId = globalThis.crypto.randomUUID();
  }
  for (const pause of RETRY_PAUSES_MS) {
    try {
      return await next(req);
    } catch (e) {
      if (!(e instanceof ConnectError) || e.code !== Code.Unavailable) {
        throw e;
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
  return next(req);
};

/** The interceptors of a client made with `options`, outermost first. */
export function interceptorsFor(options: ConnectOptions): Interceptor[] {
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
  return interceptors;
}

/** The client over `transport` (made with `interceptorsFor`). */
export function clientOver(transport: Transport): RetakeClient {
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

/** The google.rpc.ErrorInfo every retake error carries (docs/errors.md). */
export interface ErrorInfo {
  /** A name of ErrorReason (gen/retake/v1/error_pb), e.g. "RUN_NOT_FOUND". */
  reason: string;
  domain: string;
  /** Facts about the error, keyed in lowerCamelCase: runId, nodeIds... */
  metadata: Record<string, string>;
}

/**
 * The ErrorInfo of an error a call threw, for handling errors by reason:
 * `errorInfo(e)?.reason === "RUN_NOT_FOUND"`. Undefined for anything else.
 */
export function errorInfo(e: unknown): ErrorInfo | undefined {
  if (!(e instanceof ConnectError)) return undefined;
  for (const detail of e.details) {
    if (!("type" in detail) || detail.type !== "google.rpc.ErrorInfo") continue;
    const info: ErrorInfo = { reason: "", domain: "", metadata: {} };
    const reader = new BinaryReader(detail.value);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      if (field === 1) info.reason = reader.string();
      else if (field === 2) info.domain = reader.string();
      else if (field === 3) {
        const entry = new BinaryReader(reader.bytes());
        let key = "";
        let value = "";
        while (entry.pos < entry.len) {
          const [f, w] = entry.tag();
          if (f === 1) key = entry.string();
          else if (f === 2) value = entry.string();
          else entry.skip(w);
        }
        info.metadata[key] = value;
      } else reader.skip(wireType as WireType);
    }
    return info;
  }
  return undefined;
}
