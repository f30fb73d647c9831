// Server addresses: `HOST:PORT` (as RETAKE_SERVER is often set), `http://`
// and `https://` are all accepted, as by the CLI and the Python client.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createRetakeClient, serverUrl } from "../src/index.js";
import { startServer, type TestServer } from "./server.js";

let server: TestServer;

before(async () => {
  server = await startServer();
});
after(async () => {
  await server?.stop();
});

test("HOST:PORT means http://HOST:PORT; http:// and https:// are kept", () => {
  assert.equal(serverUrl("127.0.0.1:50051"), "http://127.0.0.1:50051");
  assert.equal(serverUrl("localhost:50051"), "http://localhost:50051");
  assert.equal(serverUrl(" http://127.0.0.1:50051/ "), "http://127.0.0.1:50051");
  assert.equal(serverUrl("https://retake.example:443"), "https://retake.example:443");
  assert.equal(serverUrl("HTTPS://retake.example"), "https://retake.example");
  assert.throws(() => serverUrl("grpc://127.0.0.1:50051"), /'grpc:\/\/' is not supported/);
});

test("a client connects to HOST:PORT without a scheme", async () => {
  const hostPort = server.baseUrl.replace(/^http:\/\//, "");
  assert.match(hostPort, /^127\.0\.0\.1:\d+$/);
  for (const address of [hostPort, server.baseUrl]) {
    const retake = createRetakeClient(address);
    const { runs } = await retake.runs.listRuns({});
    assert.deepEqual(runs, []);
  }
});
