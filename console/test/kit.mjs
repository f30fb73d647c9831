// What the console's browser tests share: a real retake-server (and the
// retake CLI to start runs on it), Debian's Chromium driven by
// puppeteer-core, a local OpenAI-compatible endpoint that streams tokens
// when told to, and screenshots kept as test artifacts. Each test file is
// one suite with its own server and browser.
import { spawn, execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import puppeteer from "puppeteer-core";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const EXAMPLES = join(REPO, "examples");
const DIST = join(REPO, "console", "dist");
const SERVER_BIN = process.env.RETAKE_SERVER_BIN ?? join(REPO, "target", "debug", "retake-server");
const CLI_BIN = process.env.RETAKE_CLI_BIN ?? join(dirname(SERVER_BIN), "retake");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
export const SHOTS = process.env.CONSOLE_SCREENSHOTS ?? join(REPO, "target", "console-screenshots");

/** Why the browser tests cannot run here, or null. Under CI a missing
 * browser is a failure, never a skip. */
function missingBrowser() {
  if (existsSync(CHROMIUM)) return null;
  const why = `${CHROMIUM} is missing (apt-get install chromium, or set CHROMIUM_PATH)`;
  if (process.env.CI === "true") throw new Error(why);
  return why;
}

/** A describe() whose tests share one server (started with `serverArgs`)
 * and one browser: `body` gets an object whose `server` and `ui` are set
 * before the first test runs. Skipped, saying why, where the browser is
 * missing. */
export function consoleSuite(name, { serverArgs = [] }, body) {
  const skip = missingBrowser();
  if (skip) console.log(`# console browser tests skipped: ${skip}`);
  describe(name, { skip: skip ?? false }, () => {
    const ctx = {};
    before(async () => {
      ctx.server = await startServer(...serverArgs);
      ctx.ui = await openBrowser();
    });
    after(async () => {
      await ctx.ui?.close();
      await ctx.server?.stop();
    });
    body(ctx);
  });
}

async function startServer(...args) {
  for (const bin of [SERVER_BIN, CLI_BIN]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: build the workspace (cargo build) or set RETAKE_SERVER_BIN`);
  }
  const dir = mkdtempSync(join(tmpdir(), "retake-console-"));
  // The files on disk, not the copy built into the binary: the tests check
  // the bundle as it is now, even when the server was built before it.
  const serve = ["--listen", "127.0.0.1:0", "--db", join(dir, "retake.db"), "--console-dir", DIST];
  const child = spawn(SERVER_BIN, [...serve, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1", RUST_LOG: "warn" },
  });
  let stderr = "";
  child.stderr.on("data", (c) => (stderr = (stderr + c).slice(-4000)));
  const lines = createInterface({ input: child.stdout });
  const address = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`retake-server did not start:\n${stderr}`)), 30_000);
    lines.once("line", (line) => {
      clearTimeout(timer);
      const m = /listening on (\S+:\d+)/.exec(line);
      m ? ok(m[1]) : fail(new Error(`unexpected first line: ${line}\n${stderr}`));
    });
    child.once("exit", (code) => fail(new Error(`retake-server exited with ${code}:\n${stderr}`)));
  });
  lines.on("line", () => {});
  const url = `http://${address}`;
  return {
    url,
    dir,
    /** Runs the retake CLI against this server; resolves with its output
     * whatever its exit code. */
    async cli(...cliArgs) {
      try {
        const { stdout } = await promisify(execFile)(CLI_BIN, ["--server", url, ...cliArgs], {
          env: { ...process.env, NO_COLOR: "1" },
          maxBuffer: 64 << 20,
        });
        return stdout;
      } catch (e) {
        return `${e.stdout ?? ""}${e.stderr ?? ""}`;
      }
    },
    /** Starts a run and returns its id at once. */
    async detach(file, ...more) {
      const out = await this.cli("run", file, "--detach", ...more);
      const id = /run_[0-9a-f-]+/.exec(out)?.[0];
      if (!id) throw new Error(`no run id in: ${out}`);
      return id;
    },
    workflow(name, text) {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
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

async function openBrowser() {
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    args: ["--headless=new", "--no-sandbox", "--disable-gpu"],
  });
  mkdirSync(SHOTS, { recursive: true });
  return {
    browser,
    async page(width = 1280, height = 800) {
      const page = await browser.newPage();
      await page.setViewport({ width, height });
      const problems = [];
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
      page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()}`));
      page.on("request", (r) => {
        // Nothing may come from anywhere but the server itself.
        const u = new URL(r.url());
        if (u.protocol !== "data:" && !u.host.startsWith("127.0.0.1")) problems.push(`outside request: ${r.url()}`);
      });
      page.problems = problems;
      return page;
    },
    async shot(page, name) {
      await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
    },
    close: () => browser.close(),
  };
}

/** Waits until `fn` (run in the page) returns something truthy. */
export async function until(page, fn, arg, what) {
  try {
    return await page.waitForFunction(fn, { timeout: 20_000, polling: 50 }, arg);
  } catch (e) {
    throw new Error(`${what ?? "condition"} never held: ${e.message}`);
  }
}

export async function nodeStatuses(page) {
  return page.$$eval("g.node", (gs) => Object.fromEntries(gs.map((g) => [g.dataset.node, g.dataset.status])));
}

/** An OpenAI-compatible chat endpoint that streams the words it is given,
 * holding the stream open after the first half until `release()`. */
export async function fakeModel(words) {
  let release;
  const released = new Promise((ok) => (release = ok));
  const server = createServer(async (req, res) => {
    for await (const _ of req);
    res.writeHead(200, { "content-type": "text/event-stream" });
    const chunk = (delta) =>
      res.write(`data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", model: "m", choices: [{ index: 0, delta }] })}\n\n`);
    chunk({ role: "assistant", content: "" });
    const half = Math.ceil(words.length / 2);
    for (const w of words.slice(0, half)) chunk({ content: `${w} ` });
    await released;
    for (const w of words.slice(half)) chunk({ content: `${w} ` });
    res.write(
      `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", model: "m", choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage: { prompt_tokens: 7, completion_tokens: words.length, total_tokens: 7 + words.length } })}\n\n`,
    );
    res.end("data: [DONE]\n\n");
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    base: `http://127.0.0.1:${server.address().port}/v1`,
    release: () => release(),
    close: () => new Promise((ok) => server.close(ok)),
  };
}
