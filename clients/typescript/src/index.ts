// The retake gRPC API for TypeScript on Node: the code protoc-gen-es
// generated from proto/retake/v1 (src/gen), and one function that connects
// the services over HTTP/2 gRPC with an optional bearer token. Browsers
// take src/web.ts (the package's "browser" and "./web" exports): the same
// client over gRPC-Web.
import { createGrpcTransport } from "@connectrpc/connect-node";
import { clientOver, interceptorsFor, MESSAGE_LIMIT, type ConnectOptions, type RetakeClient } from "./client.js";
import { serverUrl } from "./url.js";

export * from "./gen/retake/v1/artifact_pb.js";
export * from "./gen/retake/v1/common_pb.js";
export * from "./gen/retake/v1/error_pb.js";
export * from "./gen/retake/v1/experiment_pb.js";
export * from "./gen/retake/v1/run_pb.js";
export * from "./gen/retake/v1/workflow_pb.js";
export * from "./gen/retake/v1/worker_pb.js";
export { serverUrl } from "./url.js";
export { errorInfo, type ConnectOptions, type ErrorInfo, type RetakeClient, type WaitOptions } from "./client.js";
export { createWorker, RetakeWorker, TransientError, type Handler, type Task, type WorkerOptions } from "./worker.js";
export { Code, ConnectError } from "@connectrpc/connect";

/**
 * Connects to a retake server: `createRetakeClient("127.0.0.1:50051")`, or
 * with a scheme, `http://127.0.0.1:50051` or `https://retake.example:443`.
 */
export function createRetakeClient(server: string, options: ConnectOptions = {}): RetakeClient {
  // The server's limit (64 MiB), not 4 MiB: a run with large variables
  // comes back whole.
  const transport = createGrpcTransport({
    baseUrl: serverUrl(server),
    interceptors: interceptorsFor(options),
    readMaxBytes: MESSAGE_LIMIT,
    writeMaxBytes: MESSAGE_LIMIT,
  });
  return clientOver(transport);
}
