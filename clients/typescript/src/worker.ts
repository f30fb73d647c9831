// Workers: your own functions as the steps of retake workflows. A node whose
// agent is `worker://NAME` becomes a task for a worker serving NAME:
//
//   createWorker("127.0.0.1:50051", { token, concurrency: 4 })
//     .agent("summarize", async (task) => ({ result: "..." }))
//     .run();
//
// The worker keeps one stream open to the server (WorkerService.Work): it
// says which agents it serves and how many tasks it runs at once, receives
// tasks, and sends heartbeats so the server knows it is alive. A task whose
// worker stops being heard from goes to another worker as a new attempt,
// which does not count against the node's retry budget.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { hostname } from "node:os";
import {
  TaskOutputsSchema,
  WorkerService,
  WorkRequestSchema,
  type Task as WireTask,
  type WorkRequest,
} from "./gen/retake/v1/worker_pb.js";
import { serverUrl } from "./url.js";

/** One attempt of a node, as a handler receives it. */
export interface Task {
  id: string;
  agent: string;
  runId: string;
  nodeId: string;
  nodeExecutionId: string;
  attempt: number;
  /** The node's rendered inputs. */
  inputs: Record<string, unknown>;
  /** The node's config, without credentials. */
  config: Record<string, unknown>;
  prompt: string;
  outputNames: string[];
  deadline?: Date;
  /** The direct dependencies' outputs: upstream[nodeId][outputName]. */
  upstream: Record<string, Record<string, unknown>>;
  /** Streams a piece of output text to whoever watches the run. */
  emit(text: string): void;
  /** Reports how far the task got (watchers see it; it is not stored). */
  progress(message: string, fraction?: number): void;
  /** Aborted when the server takes the task back (cancelled run, deadline, lost lease). */
  signal: AbortSignal;
}

export type Handler = (task: Task) => unknown | Promise<unknown>;

/**
 * Throw it from a handler when another attempt may succeed (a rate limit, a
 * flaky dependency): the node's retry policy decides. Any other error fails
 * the task for good, with its message and stack.
 */
export class TransientError extends Error {
  override name = "TransientError";
}

export interface WorkerOptions {
  /** Sent as `authorization: Bearer TOKEN`. */
  token?: string;
  /** Tasks run at once; 1 by default. */
  concurrency?: number;
  /** Shown in `retake workers` and in each attempt; host name and pid by default. */
  name?: string;
  interceptors?: Interceptor[];
}

// Codes a reconnect cannot fix: the worker is refused for what it is.
const FATAL = new Set([Code.Unauthenticated, Code.PermissionDenied, Code.InvalidArgument, Code.Unimplemented]);

export class RetakeWorker {
  private readonly handlers = new Map<string, Handler>();
  private readonly concurrency: number;
  private readonly name: string;
  private readonly client;
  private stopping = false;
  private readonly tasks = new Map<string, AbortController>();
  private outbox: WorkRequest[] = [];
  private wake: (() => void) | undefined;
  /** The worker id of the current session. */
  workerId: string | undefined;

  constructor(server: string, options: WorkerOptions = {}) {
    this.concurrency = options.concurrency ?? 1;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new Error(`concurrency must be a whole number of at least 1, got ${options.concurrency}`);
    }
    this.name = options.name ?? `${hostname()}-${process.pid}`;
    const interceptors: Interceptor[] = [];
    if (options.token) {
      const header = `Bearer ${options.token}`;
      interceptors.push((next) => (req) => {
        req.header.set("authorization", header);
        return next(req);
      });
    }
    interceptors.push(...(options.interceptors ?? []));
    const transport = createGrpcTransport({ baseUrl: serverUrl(server), interceptors });
    this.client = createClient(WorkerService, transport);
  }

  /** Registers `handler` for `worker://name`. */
  agent(name: string, handler: Handler): this {
    this.handlers.set(name, handler);
    return this;
  }

  /** Asks `run` to resolve once the tasks in hand are done and delivered. */
  stop(): void {
    this.stopping = true;
    this.wake?.();
  }

  /**
   * Serves tasks until `stop` (or SIGINT): connects, reconnects with backoff
   * when the connection drops, and on the way out takes no new task, lets
   * the tasks in hand finish and delivers their results.
   */
  async run(): Promise<void> {
    if (this.handlers.size === 0) {
      throw new Error('register at least one agent with worker.agent(NAME, handler) before run()');
    }
    const onSigint = () => this.stop();
    process.once("SIGINT", onSigint);
    try {
      let backoff = 500;
      for (;;) {
        try {
          await this.session();
          backoff = 500;
        } catch (e) {
          const err = ConnectError.from(e);
          if (FATAL.has(err.code)) throw err;
          console.warn(`retake worker: connection lost (${Code[err.code]}); reconnecting in ${backoff} ms`);
        }
        if (this.stopping && this.idle()) return;
        await new Promise((ok) => setTimeout(ok, backoff));
        backoff = Math.min(backoff * 2, 10_000);
      }
    } finally {
      process.removeListener("SIGINT", onSigint);
    }
  }

  private idle(): boolean {
    return this.tasks.size === 0 && this.outbox.every((r) => r.kind.case === "heartbeat");
  }

  private send(kind: MessageInitShape<typeof WorkRequestSchema>["kind"]): void {
    this.outbox.push(create(WorkRequestSchema, { kind }));
    this.wake?.();
  }

  private async *requests(hello: WorkRequest, ended: { done: boolean }): AsyncGenerator<WorkRequest> {
    yield hello;
    while (!ended.done) {
      // Stopping, with nothing in hand and all delivered: end the stream;
      // the server then ends its side.
      if (this.stopping && this.idle()) return;
      const next = this.outbox.shift();
      if (next) {
        yield next;
        continue;
      }
      await new Promise<void>((ok) => {
        const timer = setTimeout(ok, 200);
        this.wake = () => {
          clearTimeout(timer);
          ok();
        };
      });
      this.wake = undefined;
    }
  }

  private async session(): Promise<void> {
    const hello = create(WorkRequestSchema, {
      kind: {
        case: "hello",
        value: { name: this.name, agents: [...this.handlers.keys()], concurrency: this.concurrency },
      },
    });
    const ended = { done: false };
    let heartbeat: NodeJS.Timeout | undefined;
    try {
      for await (const res of this.client.work(this.requests(hello, ended))) {
        switch (res.kind.case) {
          case "welcome": {
            this.workerId = res.kind.value.workerId;
            const every = Math.max(Number(res.kind.value.heartbeatIntervalMs), 50);
            heartbeat = setInterval(() => this.send({ case: "heartbeat", value: {} }), every);
            break;
          }
          case "task":
            // Stopping: a new task is left to its lease, and goes to
            // another worker without costing a retry.
            if (!this.stopping) this.start(res.kind.value);
            break;
          case "cancelled":
            this.tasks.get(res.kind.value.taskId)?.abort(new Error(res.kind.value.reason));
            break;
          case "refused":
            console.warn(
              `retake worker: the server refused a report on task ${res.kind.value.taskId}: ${res.kind.value.reason}`,
            );
            break;
        }
      }
    } finally {
      ended.done = true;
      this.wake?.();
      if (heartbeat) clearInterval(heartbeat);
    }
  }

  private start(t: WireTask): void {
    const abort = new AbortController();
    this.tasks.set(t.taskId, abort);
    const upstream: Record<string, Record<string, unknown>> = {};
    for (const u of t.upstream) {
      let value: unknown = u.content;
      if (u.mediaType === "application/json") {
        try {
          value = JSON.parse(u.content);
        } catch {
          // Kept as text.
        }
      }
      (upstream[u.nodeId] ??= {})[u.name] = value;
    }
    const task: Task = {
      id: t.taskId,
      agent: t.agent,
      runId: t.runId,
      nodeId: t.nodeId,
      nodeExecutionId: t.nodeExecutionId,
      attempt: t.attempt,
      inputs: JSON.parse(t.inputsJson || "{}"),
      config: JSON.parse(t.configJson || "{}"),
      prompt: t.prompt,
      outputNames: [...t.outputNames],
      deadline: t.deadline ? new Date(Number(t.deadline.seconds) * 1000 + t.deadline.nanos / 1e6) : undefined,
      upstream,
      emit: (text) => this.send({ case: "delta", value: { taskId: t.taskId, text: String(text) } }),
      progress: (message, fraction) =>
        this.send({ case: "progress", value: { taskId: t.taskId, message, fraction } }),
      signal: abort.signal,
    };
    void this.execute(task);
  }

  private async execute(task: Task): Promise<void> {
    try {
      const handler = this.handlers.get(task.agent);
      if (!handler) throw new Error(`this worker has no handler for agent '${task.agent}'`);
      const value = await handler(task);
      this.send({ case: "result", value: { taskId: task.id, outcome: { case: "outputs", value: outputs(value, task.outputNames) } } });
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.send({
        case: "result",
        value: {
          taskId: task.id,
          outcome: {
            case: "failure",
            value: {
              message: `${err.name}: ${err.message}`,
              details: err.stack ?? "",
              permanent: !(err instanceof TransientError),
            },
          },
        },
      });
    } finally {
      this.tasks.delete(task.id);
    }
  }
}

/**
 * A handler's return value as the task's outputs: an object by output name
 * (any values), or one plain value for a node with one output. Strings stay
 * text; anything else is sent as JSON.
 */
function outputs(value: unknown, names: string[]) {
  let pairs: Record<string, unknown>;
  const isRecord = typeof value === "object" && value !== null && !Array.isArray(value);
  if (isRecord && (names.length !== 1 || names[0] in (value as object))) {
    pairs = value as Record<string, unknown>;
  } else if (names.length === 1) {
    pairs = { [names[0]]: value };
  } else {
    throw new TypeError(`the node has outputs ${names.join(", ")}: return an object with those keys`);
  }
  const allText = Object.values(pairs).every((v) => typeof v === "string");
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(pairs)) out[k] = allText ? (v as string) : JSON.stringify(v);
  return create(TaskOutputsSchema, { outputs: out, mediaType: allText ? "text/plain" : "application/json" });
}

/** A worker for the server at `server` (`HOST:PORT`, `http://…` or `https://…`). */
export function createWorker(server: string, options: WorkerOptions = {}): RetakeWorker {
  return new RetakeWorker(server, options);
}
