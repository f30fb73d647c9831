// The console's one connection to the server: the TypeScript client's
// browser build (gRPC-Web on the page's own origin), with the bearer token
// when the server asks for one. The token lives in sessionStorage: for
// this tab only.
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { createRetakeClient, type RetakeClient } from "../../clients/typescript/src/web.js";

export * from "../../clients/typescript/src/gen/retake/v1/common_pb.js";
export * from "../../clients/typescript/src/gen/retake/v1/run_pb.js";
export * from "../../clients/typescript/src/gen/retake/v1/artifact_pb.js";
export * from "../../clients/typescript/src/gen/retake/v1/experiment_pb.js";
export { Code, ConnectError };

const TOKEN_KEY = "retake.token";

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

const bearer: Interceptor = (next) => (req) => {
  const t = token();
  if (t) req.header.set("authorization", `Bearer ${t}`);
  return next(req);
};

const retake: RetakeClient = createRetakeClient(location.origin, { interceptors: [bearer] });

export const runs = retake.runs;
export const artifacts = retake.artifacts;
export const experiments = retake.experiments;
/** An artifact's metadata and content, streamed in chunks. */
export const readArtifact = retake.readArtifact;

/** What a person reads of a failed call: the server's own words. */
export function errorText(e: unknown): string {
  if (e instanceof ConnectError) return e.rawMessage || Code[e.code];
  return e instanceof Error ? e.message : String(e);
}

export function isCode(e: unknown, code: Code): boolean {
  return e instanceof ConnectError && e.code === code;
}

/** Milliseconds since the epoch, or null for an unset timestamp. */
export function ms(t: Timestamp | undefined): number | null {
  return t ? timestampMs(t) : null;
}

/** Listeners told when a call was refused for want of a token. */
const unauthenticated = new Set<() => void>();

export function onUnauthenticated(listener: () => void): () => void {
  unauthenticated.add(listener);
  return () => unauthenticated.delete(listener);
}

/** Reports a refused token to the app, which then asks for one. */
export function noteError(e: unknown): void {
  if (isCode(e, Code.Unauthenticated)) for (const l of unauthenticated) l();
}
