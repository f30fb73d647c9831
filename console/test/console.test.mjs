// The console in a real Chromium against a real retake-server: what a
// person sees on each page, the live view, and the actions.
import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { EXAMPLES, fakeModel, missingBrowser, nodeStatuses, openBrowser, startServer, until } from "./kit.mjs";

const skip = missingBrowser();

const PARALLEL = `name: parallel
description: two sleeps side by side, then a join
nodes:
  start: {agent: local://echo, inputs: {x: "1"}, outputs: [result]}
  left: {agent: local://sleep, config: {ms: 400}, inputs: {x: "\${start.result}"}, outputs: [result], depends_on: [start]}
  right: {agent: local://sleep, config: {ms: 400}, inputs: {x: "\${start.result}"}, outputs: [result], depends_on: [start]}
  join: {agent: local://echo, outputs: [result], depends_on: [left, right]}
`;

const FAILING = `name: failing
nodes:
  fetch: {agent: local://echo, inputs: {x: "1"}, outputs: [result]}
  transform: {agent: local://fail, config: {message: "the parser choked on line 3"}, outputs: [result], depends_on: [fetch]}
  publish: {agent: local://echo, inputs: {x: "\${transform.result}"}, outputs: [result], depends_on: [transform]}
`;

const SLOW = `name: slow
nodes:
  first: {agent: local://sleep, config: {ms: 300}, outputs: [result]}
  second: {agent: local://sleep, config: {ms: 600}, outputs: [result], depends_on: [first]}
  third: {agent: local://sleep, config: {ms: 60000}, outputs: [result], depends_on: [second]}
`;

describe("the console", { skip: skip ?? false }, () => {
  let server, ui;
  before(async () => {
    server = await startServer();
    ui = await openBrowser();
  });
  after(async () => {
    await ui?.close();
    await server?.stop();
  });

  test("the runs list shows every run, filters by status, and offers debug on a failed one", async () => {
    await server.cli("run", join(EXAMPLES, "report-pipeline.yaml"), "--var", "topic=tides");
    await server.cli("run", server.workflow("failing.yaml", FAILING));
    const page = await ui.page();
    await page.goto(`${server.url}/`);
    await until(page, () => document.querySelectorAll("tr.run-row").length >= 2, null, "two runs listed");
    const rows = await page.$$eval("tr.run-row", (rs) => rs.map((r) => r.innerText.replace(/\s+/g, " ")));
    assert.ok(rows.some((r) => r.includes("failed") && r.includes("failing") && r.includes("debug")), rows.join("\n"));
    assert.ok(rows.some((r) => r.includes("completed") && r.includes("report-pipeline") && r.includes("4/4")), rows.join("\n"));
    await ui.shot(page, "runs-list");
    // A run started now appears without a reload.
    const before = rows.length;
    await server.cli("run", join(EXAMPLES, "hello.yaml"));
    await until(page, (n) => document.querySelectorAll("tr.run-row").length > n, before, "the new run listed live");
    // Filtering by status keeps it in the address.
    await page.select('select[name="status"]', "failed");
    await until(page, () => [...document.querySelectorAll("tr.run-row")].every((r) => r.innerText.includes("failed")) && document.querySelectorAll("tr.run-row").length === 1, null, "only the failed run");
    assert.match(page.url(), /status=failed/);
    // "debug" opens the failed run at its failing node.
    await page.click("a.debug");
    await until(page, () => document.querySelector('[data-testid="node-panel"]'), null, "the failing node's panel");
    assert.match(page.url(), /node=transform/);
    assert.deepEqual(page.problems, []);
  });

  test("a failed run says where and why on its first screen", async () => {
    const page = await ui.page();
    await page.goto(`${server.url}/runs/latest?`);
    await page.goto(`${server.url}/?status=failed`);
    await until(page, () => document.querySelector("tr.run-row a.mono"), null, "the failed run");
    await page.click("tr.run-row a.mono");
    await until(page, () => document.querySelector('[data-testid="failure"]'), null, "the failure");
    const failure = await page.$eval('[data-testid="failure"]', (e) => e.innerText);
    assert.match(failure, /transform/);
    assert.match(failure, /the parser choked on line 3/);
    const inView = await page.$eval('[data-testid="failure"]', (e) => e.getBoundingClientRect().bottom <= innerHeight);
    assert.ok(inView, "the failure is on the first screen");
    assert.deepEqual(await nodeStatuses(page), { fetch: "completed", transform: "failed", publish: "skipped" });
    // Errors only: the timeline keeps the failed node alone.
    await page.click('.actions input[type="checkbox"]');
    await until(page, () => document.querySelectorAll(".tl-row").length === 1, null, "errors only");
    await ui.shot(page, "failed-run");
  });

  test("the graph and timeline show parallel branches overlapping; a node's panel shows its outputs", async () => {
    const out = await server.cli("run", server.workflow("parallel.yaml", PARALLEL));
    assert.match(out, /completed/);
    const page = await ui.page();
    await page.goto(`${server.url}/runs/latest`);
    await until(page, () => document.querySelectorAll("g.node").length === 4, null, "four nodes drawn");
    await until(page, () => /^\/runs\/run_[0-9a-f-]+$/.test(location.pathname), null, "latest resolved to the run's id");
    await until(page, () => document.querySelectorAll("g.node").length === 4, null, "still four nodes drawn");
    assert.deepEqual(await nodeStatuses(page), { start: "completed", left: "completed", right: "completed", join: "completed" });
    const bars = await page.$$eval(".tl-bar", (bs) => Object.fromEntries(bs.map((b) => [b.closest(".tl-row").dataset.node, [Number(b.dataset.start), Number(b.dataset.end)]])));
    const [l, r] = [bars.left, bars.right];
    assert.ok(l[0] < r[1] && r[0] < l[1], `left ${l} and right ${r} overlap in time`);
    const rects = await page.$$eval(".tl-bar", (bs) => Object.fromEntries(bs.map((b) => [b.closest(".tl-row").dataset.node, b.getBoundingClientRect().left])));
    assert.ok(Math.abs(rects.left - rects.right) < 40 && rects.join > rects.left, "bars drawn side by side in time");
    // The keyboard reaches a node and opens it.
    await page.$eval('g.node[data-node="join"]', (g) => g.focus());
    await page.keyboard.press("Enter");
    await until(page, () => document.querySelector('[data-testid="node-panel"] .output pre'), null, "join's output");
    const output = await page.$eval('[data-testid="node-panel"] .output', (e) => e.innerText);
    assert.match(output, /application\/json/);
    assert.match(output, /"left"/);
    await ui.shot(page, "run-parallel");
    assert.deepEqual(page.problems, []);
  });

  test("a running run advances on screen without a reload, streamed model text included", async () => {
    const model = await fakeModel(["retake", "records", "every", "step", "and", "replays", "any", "of", "them"]);
    try {
      const file = server.workflow(
        "live.yaml",
        `name: live
nodes:
  first: {agent: local://sleep, config: {ms: 300}, outputs: [result]}
  ask:
    agent: llm://ollama/llama3.2
    config: {api_base: "${model.base}"}
    inputs: {q: "\${first.result}"}
    outputs: [answer]
    depends_on: [first]
`,
      );
      const id = await server.detach(file);
      const page = await ui.page();
      await page.goto(`${server.url}/runs/${id}?node=ask`);
      await until(page, () => document.querySelector('g.node[data-node="ask"]')?.dataset.status === "running", null, "ask running");
      await until(page, () => document.querySelector('[data-testid="live-text"]')?.innerText.includes("every"), null, "streamed text");
      await ui.shot(page, "run-live");
      model.release();
      await until(page, () => document.querySelector(".run-page")?.dataset.status === "completed", null, "the run completes on screen");
      await until(page, () => document.querySelector('[data-testid="node-panel"] .output')?.innerText.includes("replays any of them"), null, "the final output");
      assert.deepEqual(page.problems, []);
    } finally {
      model.release();
      await model.close();
    }
  });

  test("a replay with an override starts from the page and finishes; a bad one is refused inline", async () => {
    const source = /run_[0-9a-f-]+/.exec(await server.cli("run", join(EXAMPLES, "report-pipeline.yaml"), "--var", "topic=tides"))[0];
    const page = await ui.page();
    await page.goto(`${server.url}/runs/${source}?node=review`);
    await until(page, () => document.querySelector('[data-testid="node-panel"]'), null, "the panel");
    // A bad agent: the server's words, next to the form.
    await page.click('[data-testid="node-panel"] button:not(.close)');
    await page.waitForSelector('[data-testid="replay-form"]');
    const [addSwap] = await page.$$('[data-testid="replay-form"] fieldset button');
    await addSwap.click();
    await page.type('[data-testid="replay-form"] fieldset .pair input', "nope://agent");
    await page.click('[data-testid="replay-form"] button[type="submit"]');
    await until(page, () => document.querySelector('[data-testid="replay-error"]'), null, "the refusal");
    const refusal = await page.$eval('[data-testid="replay-error"]', (e) => e.innerText);
    assert.match(refusal, /nope:\/\/agent/);
    assert.equal(new URL(page.url()).pathname, `/runs/${source}`, "still on the source run");
    await ui.shot(page, "replay-refused");
    // Remove the swap; override transform's output instead.
    await page.click('[data-testid="replay-form"] .pair button');
    const buttons = await page.$$('[data-testid="replay-form"] fieldset > button');
    await buttons[1].click();
    await page.select('[data-testid="replay-form"] fieldset:nth-of-type(2) .pair select', "transform");
    const inputs = await page.$$('[data-testid="replay-form"] fieldset:nth-of-type(2) .pair input');
    await inputs[1].type("facts from the page");
    await page.select('select[name="from"]', "");
    await page.click('[data-testid="replay-form"] button[type="submit"]');
    await until(page, (s) => location.pathname.startsWith("/runs/") && !location.pathname.endsWith(s), source, "the new run");
    await until(page, () => document.querySelector(".run-page")?.dataset.status === "completed", null, "the replay completes");
    const statuses = await nodeStatuses(page);
    assert.deepEqual(statuses, { fetch: "reused", transform: "overridden", review: "completed", publish: "completed" });
    const info = await page.$eval('[data-testid="replay-info"]', (e) => e.innerText);
    assert.match(info, /Replay of/);
    assert.match(info, /transform/);
    assert.match(info, /facts from the page/);
    await ui.shot(page, "replay-started");
    // Compare with source: the diff page names where they part.
    await page.click('[data-testid="compare-source"]');
    await until(page, () => document.querySelector('[data-testid="first-divergence"]'), null, "the diff");
    const first = await page.$eval('[data-testid="first-divergence"]', (e) => e.innerText);
    assert.match(first, /First divergence: transform/);
    const marks = await page.$$eval("table.diff tr[data-node]", (rs) => Object.fromEntries(rs.map((r) => [r.dataset.node, r.className])));
    assert.match(marks.transform, /first-divergence/);
    assert.match(marks.review, /downstream/);
    assert.match(marks.publish, /downstream/);
    assert.doesNotMatch(marks.fetch, /downstream|first-divergence/);
    assert.ok(await page.$('tr.output-diff[data-output-of="transform"] .text-diff .add'), "the changed output as a text diff");
    // Filters: changed only.
    await page.click('nav.filters a:nth-child(2)');
    await until(page, () => !document.querySelector('table.diff tr[data-node="fetch"]'), null, "unchanged rows hidden");
    await ui.shot(page, "diff");
    assert.deepEqual(page.problems, []);
  });

  test("a swap's diff shows the agents and the changed output", async () => {
    const source = /run_[0-9a-f-]+/.exec(await server.cli("run", join(EXAMPLES, "report-pipeline.yaml"), "--var", "topic=tides"))[0];
    const out = await server.cli("replay", source, "--agent", "review=local://echo");
    const replay = [...out.matchAll(/run_[0-9a-f-]+/g)].map((m) => m[0]).find((id) => id !== source);
    const page = await ui.page();
    await page.goto(`${server.url}/runs/${source}/diff/${replay}`);
    await until(page, () => document.querySelector('table.diff tr[data-node="review"]'), null, "the diff");
    const row = await page.$eval('table.diff tr[data-node="review"]', (r) => r.innerText);
    assert.match(row, /local:\/\/mock → local:\/\/echo/);
    assert.match(await page.$eval('[data-testid="first-divergence"]', (e) => e.innerText), /First divergence: review/);
    const publish = await page.$eval('table.diff tr[data-node="publish"]', (r) => r.innerText);
    assert.match(publish, /completed → skipped/);
    await ui.shot(page, "diff-swap");
  });

  test("a retried node shows one bar per attempt", async () => {
    const file = server.workflow(
      "retry.yaml",
      `name: retried
nodes:
  flaky:
    agent: local://fail
    config: {times: 2}
    retry_policy: {max_retries: 3, backoff: fixed, initial_delay_ms: 100}
    outputs: [result]
`,
    );
    assert.match(await server.cli("run", file), /completed/);
    const page = await ui.page();
    await page.goto(`${server.url}/runs/latest?node=flaky`);
    await until(page, () => document.querySelectorAll('.tl-row[data-node="flaky"] .tl-bar').length === 3, null, "three attempts");
    const bars = await page.$$eval('.tl-row[data-node="flaky"] .tl-bar', (bs) => bs.map((b) => b.className));
    assert.deepEqual(bars.map((c) => c.includes("st-failed")), [true, true, false], "two failed attempts, then one that completed");
    assert.equal(await page.$$eval(".attempts tbody tr", (rs) => rs.length), 3);
    await ui.shot(page, "retries");
  });

  test("cancel stops a running run", async () => {
    const id = await server.detach(server.workflow("slow.yaml", SLOW));
    const page = await ui.page();
    await page.goto(`${server.url}/runs/${id}`);
    await until(page, () => document.querySelector('g.node[data-node="second"]')?.dataset.status === "running", null, "second running");
    await page.click(".actions button.danger");
    await until(page, () => document.querySelector(".run-page")?.dataset.status === "cancelled", null, "cancelled on screen");
    assert.equal((await nodeStatuses(page)).third, "cancelled");
  });

  test("an approval is answered from the page and the run goes on", async () => {
    const id = await server.detach(join(EXAMPLES, "approval.yaml"));
    const page = await ui.page();
    await page.goto(`${server.url}/runs/${id}`);
    await until(page, () => document.querySelector('[data-wait="review"]'), null, "the wait");
    const wait = await page.$eval('[data-wait="review"]', (e) => e.innerText);
    assert.match(wait, /Publish this summary\?/);
    await ui.shot(page, "approval");
    await page.click('[data-wait="review"] button[type="submit"]');
    await until(page, () => document.querySelector(".run-page")?.dataset.status === "completed", null, "completed after approval");
    const statuses = await nodeStatuses(page);
    assert.equal(statuses.publish, "completed");
    assert.equal(statuses.revise, "skipped");
  });

  test("an experiment shows as a matrix of runs × nodes, each cell opening its diff", async () => {
    for (let i = 0; i < 3; i++) await server.cli("run", join(EXAMPLES, "report-pipeline.yaml"), "--var", `topic=m${i}`);
    const out = await server.cli("experiment", "run", "--workflow", "report-pipeline", "--last", "3", "--agent", "transform=local://echo", "--name", "echo transform");
    const id = /exp_[0-9a-f-]+/.exec(out)?.[0];
    assert.ok(id, out);
    const page = await ui.page();
    await page.goto(`${server.url}/experiments`);
    await until(page, (i) => document.querySelector(`tr[data-experiment="${i}"] a`), id, "the experiment listed");
    await page.click(`tr[data-experiment="${id}"] a`);
    await until(page, () => document.querySelectorAll("table.matrix tbody tr").length === 3, null, "three rows");
    const kinds = await page.$$eval("table.matrix tbody tr", (rows) =>
      rows.map((r) => Object.fromEntries([...r.querySelectorAll("td.cell")].map((c) => [c.dataset.node, c.dataset.kind]))),
    );
    for (const row of kinds) {
      assert.deepEqual(row, { fetch: "reused", transform: "changed", review: "unchanged", publish: "changed" });
    }
    const aggregates = await page.$eval('[data-testid="node-aggregates"] tr[data-node="transform"]', (r) => r.innerText);
    assert.match(aggregates, /transform\s+3\s+0/);
    await ui.shot(page, "experiment");
    await page.click('table.matrix tbody tr:first-child td.cell[data-node="transform"] a');
    await until(page, () => document.querySelector('[data-testid="first-divergence"]'), null, "the pair's diff");
    assert.match(await page.$eval('[data-testid="first-divergence"]', (e) => e.innerText), /transform/);
    assert.deepEqual(page.problems, []);
  });

  test("an unknown run or address shows not found at once", async () => {
    const page = await ui.page();
    await page.goto(`${server.url}/runs/run_does-not-exist`);
    await until(page, () => document.querySelector('[data-testid="not-found"]'), null, "not found");
    assert.match(await page.$eval('[data-testid="not-found"]', (e) => e.innerText), /run_does-not-exist/);
    await page.goto(`${server.url}/runs/a/b/c/d/e`);
    await until(page, () => document.querySelector('[data-testid="not-found"]'), null, "not found");
  });

  test("at phone width nothing spills sideways", async () => {
    const page = await ui.page(390, 844);
    await page.goto(`${server.url}/runs/latest?node=publish`);
    await until(page, () => document.querySelector('[data-testid="node-panel"]'), null, "the panel");
    const spill = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
    assert.ok(spill <= 1, `the page is ${spill}px wider than the screen`);
    await ui.shot(page, "phone-run");
  });

  test("a 1,000-node run renders (time printed, not asserted)", async () => {
    const nodes = ["name: thousand", "nodes:"];
    for (let i = 0; i < 1000; i++) {
      nodes.push(`  n${i}: {agent: local://echo, inputs: {step: ${i}}, outputs: [result]${i ? `, depends_on: [n${i - 1}]` : ""}}`);
    }
    const id = /run_[0-9a-f-]+/.exec(await server.cli("run", server.workflow("thousand.yaml", nodes.join("\n") + "\n")))[0];
    const page = await ui.page();
    await page.goto(`${server.url}/runs/${id}`);
    await until(page, () => document.querySelectorAll("g.node").length === 1000, null, "1,000 nodes drawn");
    const ms = await page.evaluate(() => performance.now());
    const nav = await page.evaluate(() => performance.getEntriesByType("navigation")[0].responseEnd);
    console.log(`# console: 1,000-node run page rendered ${Math.round(ms)} ms after navigation start (${Math.round(ms - nav)} ms after the page arrived)`);
  });
});

describe("the console with a token", { skip: skip ?? false }, () => {
  test("asks for the token, keeps it for the tab, and then shows the runs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "retake-token-"));
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, "s3cret\n");
    const server = await startServer("--auth-token-file", tokenFile);
    const ui = await openBrowser();
    try {
      const page = await ui.page();
      await page.goto(`${server.url}/`);
      await until(page, () => document.querySelector(".token-form"), null, "the token form");
      await ui.shot(page, "token-form");
      await page.type('input[name="token"]', "s3cret");
      await page.click('.token-form button[type="submit"]');
      await until(page, () => document.querySelector("h1")?.innerText === "Runs" && !document.querySelector(".error-box"), null, "the list");
      const stored = await page.evaluate(() => [sessionStorage.getItem("retake.token"), localStorage.length]);
      assert.deepEqual(stored, ["s3cret", 0], "kept for this tab only");
    } finally {
      await ui.close();
      await server.stop();
    }
  });
});

if (skip) console.log(`# console browser tests skipped: ${skip}`);
