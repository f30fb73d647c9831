// Acting on a run that is not finished: cancelling it, answering its wait.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { consoleSuite, EXAMPLES, nodeStatuses, until } from "./kit.mjs";
import { SLOW } from "./workflows.mjs";

consoleSuite("cancel and waits", {}, (ctx) => {
  test("cancel stops a running run", async () => {
    const id = await ctx.server.detach(ctx.server.workflow("slow.yaml", SLOW));
    const page = await ctx.ui.page();
    await page.goto(`${ctx.server.url}/runs/${id}`);
    await until(page, () => document.querySelector('g.node[data-node="second"]')?.dataset.status === "running", null, "second running");
    await page.click(".actions button.danger");
    await until(page, () => document.querySelector(".run-page")?.dataset.status === "cancelled", null, "cancelled on screen");
    assert.equal((await nodeStatuses(page)).third, "cancelled");
  });
  test("an approval is answered from the page and the run goes on", async () => {
    const id = await ctx.server.detach(join(EXAMPLES, "approval.yaml"));
    const page = await ctx.ui.page();
    await page.goto(`${ctx.server.url}/runs/${id}`);
    await until(page, () => document.querySelector('[data-wait="review"]'), null, "the wait");
    const wait = await page.$eval('[data-wait="review"]', (e) => e.innerText);
    assert.match(wait, /Publish this summary\?/);
    await ctx.ui.shot(page, "approval");
    await page.click('[data-wait="review"] button[type="submit"]');
    await until(page, () => document.querySelector(".run-page")?.dataset.status === "completed", null, "completed after approval");
    const statuses = await nodeStatuses(page);
    assert.equal(statuses.publish, "completed");
    assert.equal(statuses.revise, "skipped");
  });
});
