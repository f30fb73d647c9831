// The runs list: every run with its status, filters kept in the address,
// runs appearing live, and paging.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { consoleSuite, EXAMPLES, until } from "./kit.mjs";
import { FAILING } from "./workflows.mjs";

consoleSuite("the runs list", {}, (ctx) => {
  test("the runs list shows every run, filters by status, and offers debug on a failed one", async () => {
    await ctx.server.cli("run", join(EXAMPLES, "report-pipeline.yaml"), "--var", "topic=tides");
    await ctx.server.cli("run", ctx.server.workflow("failing.yaml", FAILING));
    const page = await ctx.ui.page();
    await page.goto(`${ctx.server.url}/`);
    await until(page, () => document.querySelectorAll("tr.run-row").length >= 2, null, "two runs listed");
    const rows = await page.$$eval("tr.run-row", (rs) => rs.map((r) => r.innerText.replace(/\s+/g, " ")));
    assert.ok(rows.some((r) => r.includes("failed") && r.includes("failing") && r.includes("debug")), rows.join("\n"));
    assert.ok(rows.some((r) => r.includes("completed") && r.includes("report-pipeline") && r.includes("4/4")), rows.join("\n"));
    await ctx.ui.shot(page, "runs-list");
    // A run started now appears without a reload.
    const before = rows.length;
    await ctx.server.cli("run", join(EXAMPLES, "hello.yaml"));
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
  test("the runs list pages forward and back, keeping the filter", async () => {
    const file = ctx.server.workflow("paged.yaml", "name: paged\nnodes:\n  only: {agent: local://echo, inputs: {x: '1'}, outputs: [result]}\n");
    const ids = [];
    for (let i = 0; i < 30; i++) ids.push(await ctx.server.detach(file));
    const page = await ctx.ui.page();
    await page.goto(`${ctx.server.url}/?workflow=paged`);
    const listed = () => page.$$eval("tr.run-row", (rs) => rs.map((r) => r.dataset.run));
    await until(page, () => document.querySelectorAll("tr.run-row").length === 25, null, "a first page of 25");
    const first = await listed();
    assert.deepEqual(first, ids.slice(5).reverse(), "newest first");
    assert.equal(await page.$('a[rel="prev"]'), null, "no previous page on the first");
    await page.click('a[rel="next"]');
    await until(page, () => document.querySelectorAll("tr.run-row").length === 5, null, "a second page of 5");
    assert.deepEqual(await listed(), ids.slice(0, 5).reverse());
    assert.equal(await page.$('a[rel="next"]'), null, "no page after the last");
    assert.match(page.url(), /workflow=paged/);
    await page.click('a[rel="prev"]');
    await until(page, () => document.querySelectorAll("tr.run-row").length === 25, null, "the first page again");
    assert.deepEqual(await listed(), first);
    assert.deepEqual(page.problems, []);
  });
});
