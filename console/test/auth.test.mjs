// A server that wants a token: the console asks for it, says when it is
// refused, and keeps it for the tab.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { consoleSuite, until } from "./kit.mjs";

const tokenFile = join(mkdtempSync(join(tmpdir(), "retake-token-")), "token");
writeFileSync(tokenFile, "s3cret\n");

consoleSuite("the console with a token", { serverArgs: ["--auth-token-file", tokenFile] }, (ctx) => {
  test("asks for the token, says when it is refused, keeps it for the tab, and then shows the runs", async () => {
    const page = await ctx.ui.page();
    await page.goto(`${ctx.server.url}/`);
    await until(page, () => document.querySelector(".token-form"), null, "the token form");
    await ctx.ui.shot(page, "token-form");
    await page.type('input[name="token"]', "wrong");
    await page.click('.token-form button[type="submit"]');
    await until(page, () => document.querySelector(".token-form .error")?.innerText.includes("refused"), null, "the refusal");
    await page.type('input[name="token"]', "s3cret");
    await page.click('.token-form button[type="submit"]');
    await until(page, () => document.querySelector("h1")?.innerText === "Runs" && !document.querySelector(".error-box"), null, "the list");
    const stored = await page.evaluate(() => [sessionStorage.getItem("retake.token"), localStorage.length]);
    assert.deepEqual(stored, ["s3cret", 0], "kept for this tab only");
  });
});
