// Experiments: the list, and one experiment as a matrix of runs × nodes.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { consoleSuite, EXAMPLES, until } from "./kit.mjs";

consoleSuite("experiments", {}, (ctx) => {
  test("an experiment shows as a matrix of runs × nodes, each cell opening its diff", async () => {
    for (let i = 0; i < 3; i++) await ctx.server.cli("run", join(EXAMPLES, "report-pipeline.yaml"), "--var", `topic=m${i}`);
    const out = await ctx.server.cli("experiment", "run", "--workflow", "report-pipeline", "--last", "3", "--agent", "transform=local://echo", "--name", "echo transform");
    const id = /exp_[0-9a-f-]+/.exec(out)?.[0];
    assert.ok(id, out);
    const page = await ctx.ui.page();
    await page.goto(`${ctx.server.url}/experiments`);
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
    await ctx.ui.shot(page, "experiment");
    await page.click('table.matrix tbody tr:first-child td.cell[data-node="transform"] a');
    await until(page, () => document.querySelector('[data-testid="first-divergence"]'), null, "the pair's diff");
    assert.match(await page.$eval('[data-testid="first-divergence"]', (e) => e.innerText), /transform/);
    assert.deepEqual(page.problems, []);
  });
});
