// The run page: the failure on the first screen, the graph, the timeline,
// the node panel, live updates, and pages that do not exist.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { consoleSuite, EXAMPLES, fakeModel, nodeStatuses, until } from "./kit.mjs";
import { FAILING, PARALLEL } from "./workflows.mjs";

consoleSuite("the run page", {}, (ctx) => {
  test("a failed run says where and why on its first screen", async () => {
    const id = /run_[0-9a-f-]+/.exec(await ctx.server.cli("run", ctx.server.workflow("failing.yaml", FAILING)))[0];
    const page = await ctx.ui.page();
    await page.goto(`${ctx.server.url}/runs/${id}`);
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
    await ctx.ui.shot(page, "failed-run");
  });
  test("the graph and timeline show parallel branches overlapping; a node's panel shows its outputs", async () => {
    const out = await ctx.server.cli("run", ctx.server.workflow("parallel.yaml", PARALLEL));
    assert.match(out, /completed/);
    const page = await ctx.ui.page();
    await page.goto(`${ctx.server.url}/runs/latest`);
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
    await ctx.ui.shot(page, "run-parallel");
    assert.deepEqual(page.problems, []);
  });
  test("a running run advances on screen without a reload, streamed model text included", async () => {
    const model = await fakeModel(["retake", "records", "every", "step", "and", "replays", "any", "of", "them"]);
    try {
      const file = ctx.server.workflow(
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
      const id = await ctx.server.detach(file);
      const page = await ctx.ui.page();
      await page.goto(`${ctx.server.url}/runs/${id}?node=ask`);
      await until(page, () => document.querySelector('g.node[data-node="ask"]')?.dataset.status === "running", null, "ask running");
      await until(page, () => document.querySelector('[data-testid="live-text"]')?.innerText.includes("every"), null, "streamed text");
      await ctx.ui.shot(page, "run-live");
      model.release();
      await until(page, () => document.querySelector(".run-page")?.dataset.status === "completed", null, "the run completes on screen");
      await until(page, () => document.querySelector('[data-testid="node-panel"] .output')?.innerText.includes("replays any of them"), null, "the final output");
      assert.deepEqual(page.problems, []);
    } finally {
      model.release();
      await model.close();
    }
  });
  test("a retried node shows one bar per attempt", async () => {
    const file = ctx.server.workflow(
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
    assert.match(await ctx.server.cli("run", file), /completed/);
    const page = await ctx.ui.page();
    await page.goto(`${ctx.server.url}/runs/latest?node=flaky`);
    await until(page, () => document.querySelectorAll('.tl-row[data-node="flaky"] .tl-bar').length === 3, null, "three attempts");
    const bars = await page.$$eval('.tl-row[data-node="flaky"] .tl-bar', (bs) => bs.map((b) => b.className));
    assert.deepEqual(bars.map((c) => c.includes("st-failed")), [true, true, false], "two failed attempts, then one that completed");
    assert.equal(await page.$$eval(".attempts tbody tr", (rs) => rs.length), 3);
    await ctx.ui.shot(page, "retries");
  });
  test("an unknown run or address shows not found at once", async () => {
    const page = await ctx.ui.page();
    await page.goto(`${ctx.server.url}/runs/run_does-not-exist`);
    await until(page, () => document.querySelector('[data-testid="not-found"]'), null, "not found");
    assert.match(await page.$eval('[data-testid="not-found"]', (e) => e.innerText), /run_does-not-exist/);
    await page.goto(`${ctx.server.url}/runs/a/b/c/d/e`);
    await until(page, () => document.querySelector('[data-testid="not-found"]'), null, "not found");
  });
  test("at phone width nothing spills sideways", async () => {
    const id = /run_[0-9a-f-]+/.exec(await ctx.server.cli("run", join(EXAMPLES, "report-pipeline.yaml"), "--var", "topic=tides"))[0];
    const page = await ctx.ui.page(390, 844);
    await page.goto(`${ctx.server.url}/runs/${id}?node=publish`);
    await until(page, () => document.querySelector('[data-testid="node-panel"]'), null, "the panel");
    const spill = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
    assert.ok(spill <= 1, `the page is ${spill}px wider than the screen`);
    await ctx.ui.shot(page, "phone-run");
  });
  test("a 1,000-node run renders (time printed, not asserted)", async () => {
    const nodes = ["name: thousand", "nodes:"];
    for (let i = 0; i < 1000; i++) {
      nodes.push(`  n${i}: {agent: local://echo, inputs: {step: ${i}}, outputs: [result]${i ? `, depends_on: [n${i - 1}]` : ""}}`);
    }
    const id = /run_[0-9a-f-]+/.exec(await ctx.server.cli("run", ctx.server.workflow("thousand.yaml", nodes.join("\n") + "\n")))[0];
    const page = await ctx.ui.page();
    await page.goto(`${ctx.server.url}/runs/${id}`);
    await until(page, () => document.querySelectorAll("g.node").length === 1000, null, "1,000 nodes drawn");
    const ms = await page.evaluate(() => performance.now());
    const nav = await page.evaluate(() => performance.getEntriesByType("navigation")[0].responseEnd);
    console.log(`# console: 1,000-node run page rendered ${Math.round(ms)} ms after navigation start (${Math.round(ms - nav)} ms after the page arrived)`);
  });
});
