// The retake client for browsers: the same client as on Node, over
// gRPC-Web (fetch), which retake-server answers on its own port. The
// console uses it; so can any page the server's origin serves, or any
// origin when a proxy adds CORS headers (the server sends none).
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { clientOver, interceptorsFor, type ConnectOptions, type RetakeClient } from "./client.js";
import { serverUrl } from "./url.js";

export * from "./gen/retake/v1/artifact_pb.js";
export * from "./gen/retake/v1/common_pb.js";
export * from "./gen/retake/v1/error_pb.js";
export * from "./gen/retake/v1/experiment_pb.js";
export * from "./gen/retake/v1/run_pb.js";
export * from "./gen/retake/v1/workflow_pb.js";
export { serverUrl } from "./url.js";
export { errorInfo, type ConnectOptions, type ErrorInfo, type RetakeClient, type WaitOptions } from "./client.js";
export { Code, ConnectError } from "@connectrpc/connect";

/**
 * Connects to a retake server over gRPC-Web: `createRetakeClient(location.origin)`,
 * or an address as the CLI takes it (`HOST:PORT`, `http(s)://HOST:PORT`).
 */
export function createRetakeClient(server: string, options: ConnectOptions = {}): RetakeClient {
  const transport = createGrpcWebTransport({
    baseUrl: serverUrl(server),
    interceptors: interceptorsFor(options),
  });
  return clientOver(transport);
}
