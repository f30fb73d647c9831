// Replaying from the page, and comparing a replay with its source: the
// first divergence and what lies downstream of it.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { consoleSuite, EXAMPLES, nodeStatuses, until } from "./kit.mjs";

consoleSuite("replay and diff", {}, (ctx) => {
  test("a replay with an override starts from the page and finishes; a bad one is refused inline", async () => {
    const source = /run_[0-9a-f-]+/.exec(await ctx.server.cli("run", join(EXAMPLES, "report-pipeline.yaml"), "--var", "topic=tides"))[0];
    const page = await ctx.ui.page();
    await page.goto(`${ctx.server.url}/runs/${source}?node=review`);
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
    await ctx.ui.shot(page, "replay-refused");
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
    // The timeline draws what ran here only: the others say why they have no bar.
    const rows = await page.$$eval(".tl-row", (rs) => Object.fromEntries(rs.map((r) => [r.dataset.node, [r.querySelectorAll(".tl-bar").length, r.innerText]])));
    assert.deepEqual(rows.fetch, [0, "fetch\nreused from source, did not run"]);
    assert.deepEqual(rows.transform, [0, "transform\noutput overridden by the replay, did not run"]);
    assert.equal(rows.review[0], 1);
    const info = await page.$eval('[data-testid="replay-info"]', (e) => e.innerText);
    assert.match(info, /Replay of/);
    assert.match(info, /transform/);
    assert.match(info, /facts from the page/);
    await ctx.ui.shot(page, "replay-started");
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
    await ctx.ui.shot(page, "diff");
    assert.deepEqual(page.problems, []);
  });
  test("a swap's diff shows the agents and the changed output", async () => {
    const source = /run_[0-9a-f-]+/.exec(await ctx.server.cli("run", join(EXAMPLES, "report-pipeline.yaml"), "--var", "topic=tides"))[0];
    const out = await ctx.server.cli("replay", source, "--agent", "review=local://echo");
    const replay = [...out.matchAll(/run_[0-9a-f-]+/g)].map((m) => m[0]).find((id) => id !== source);
    const page = await ctx.ui.page();
    await page.goto(`${ctx.server.url}/runs/${source}/diff/${replay}`);
    await until(page, () => document.querySelector('table.diff tr[data-node="review"]'), null, "the diff");
    const row = await page.$eval('table.diff tr[data-node="review"]', (r) => r.innerText);
    assert.match(row, /local:\/\/mock → local:\/\/echo/);
    assert.match(await page.$eval('[data-testid="first-divergence"]', (e) => e.innerText), /First divergence: review/);
    const publish = await page.$eval('table.diff tr[data-node="publish"]', (r) => r.innerText);
    assert.match(publish, /completed → skipped/);
    await ctx.ui.shot(page, "diff-swap");
  });
});
