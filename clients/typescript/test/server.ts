// Starts a real retake-server for a test: it binds 127.0.0.1:0, prints the
// port it got on its first stdout line, and keeps its database in a fresh
// temporary directory. RETAKE_SERVER_BIN overrides the binary, which is
// otherwise target/debug/retake-server of this repository.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

// dist/test/server.js -> the repository root.
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");
export const EXAMPLES = join(REPO, "examples");

export interface TestServer {
  /** http://127.0.0.1:PORT */
  baseUrl: string;
  dir: string;
  stop(): Promise<void>;
}

export async function startServer(...extraArgs: string[]): Promise<TestServer> {
  const bin = process.env.RETAKE_SERVER_BIN ?? join(REPO, "target", "debug", "retake-server");
  if (!existsSync(bin)) {
    throw new Error(`${bin} is missing: run \`cargo build -p retake-server\` or set RETAKE_SERVER_BIN`);
  }
  const dir = mkdtempSync(join(tmpdir(), "retake-ts-"));
  const child: ChildProcess = spawn(bin, ["--listen", "127.0.0.1:0", "--db", join(dir, "retake.db"), ...extraArgs], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const lines = createInterface({ input: child.stdout! });
  const address = await new Promise<string>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`retake-server did not start in 30 s:\n${stderr}`)), 30_000);
    lines.once("line", (line) => {
      clearTimeout(timer);
      const m = /listening on (\S+:\d+)/.exec(line);
      m ? ok(m[1]) : fail(new Error(`unexpected first line from retake-server: ${line}\n${stderr}`));
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`retake-server exited with ${code}:\n${stderr}`));
    });
  });
  // Keep draining stdout so the server never blocks on a full pipe.
  lines.on("line", () => {});
  return {
    baseUrl: `http://${address}`,
    dir,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((ok) => child.once("exit", ok));
        child.kill("SIGTERM");
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
