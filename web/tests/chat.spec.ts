// The client in Chromium against the real stack whose provider is the e2e
// fake (tests/e2e/fake_provider_test.go): "scenario:ok" answers "Hello,
// world", "scenario:drip chunks:N every:D" a paced reply, "scenario:echo"
// repeats the message.

import { expect, test } from "@playwright/test";
import { readFile } from "node:fs/promises";
import {
  assistant,
  dripText,
  newChat,
  PASSWORD,
  register,
  send,
  uniqueName,
  user,
} from "./helpers";

test("register shows the API's validation beside each field, then signs in", async ({ page }) => {
  await page.goto("/");
  await page.getByRole("tab", { name: "Register" }).click();
  await page.getByLabel("Username", { exact: true }).fill("a!");
  await page.getByLabel("Email").fill("not-an-address");
  await page.getByLabel("Password").fill("short");
  await page.getByRole("button", { name: "Create account" }).click();
  for (const field of ["username", "email", "password"]) {
    await expect(page.locator(`.field-error[data-field="${field}"]`)).toBeVisible();
  }
  await expect(page.getByLabel("Password")).toHaveAttribute("aria-invalid", "true");

  const name = await register(page);
  // Signed in after a reload too (the refresh token is kept).
  await page.reload();
  await expect(page.getByTestId("username")).toHaveText(name);
  await page.getByRole("button", { name: "Log out" }).click();
  await expect(page.getByRole("button", { name: "Log in" }).last()).toBeVisible();

  // A wrong password is refused with the API's message; the right one works.
  await page.getByLabel("Username or email").fill(name);
  await page.getByLabel("Password").fill("Wrong-password-1");
  await page.getByRole("button", { name: "Log in" }).last().click();
  await expect(page.getByRole("alert")).toBeVisible();
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Log in" }).last().click();
  await expect(page.getByTestId("username")).toHaveText(name);
});

test("tokens are refreshed before the access token expires, and after a 401", async ({ page }) => {
  // The stack's access tokens last 20 s (webclient_test.go), so the client
  // refreshes 5 s after it gets them, without waiting for a 401.
  const refreshes: number[] = [];
  page.on("response", (r) => {
    if (r.url().endsWith("/v1/auth/refresh")) refreshes.push(r.status());
  });
  await register(page);
  await page.waitForResponse((r) => r.url().endsWith("/v1/auth/refresh"), { timeout: 20_000 });
  expect(refreshes[0]).toBe(200);

  // An access token the API refuses: the client refreshes and retries once.
  let spoiled = 0;
  await page.route("**/v1/conversations", async (route) => {
    if (route.request().method() === "POST" && spoiled++ === 0) {
      await route.continue({
        headers: { ...route.request().headers(), authorization: "Bearer not-a-token" },
      });
    } else {
      await route.continue();
    }
  });
  const before = refreshes.length;
  await page.getByRole("button", { name: "+ New chat" }).click();
  await expect(page).toHaveURL(/\/c\//);
  expect(spoiled).toBe(2);
  expect(refreshes.length).toBeGreaterThan(before);
  expect(refreshes.every((s) => s === 200)).toBe(true);
});

test("a message is sent with Enter and the reply streams in", async ({ page }) => {
  await register(page);
  await page.getByRole("button", { name: "+ New chat" }).click();
  const box = page.getByLabel("Message", { exact: true });
  await box.fill("first line");
  await box.press("Shift+Enter");
  await box.pressSequentially("scenario:drip chunks:20 every:100ms");
  await box.press("Enter");
  await expect(user(page).first().locator(".content")).toHaveText(
    "first line\nscenario:drip chunks:20 every:100ms",
  );
  // Part of the reply is on screen while it is still being generated...
  const reply = assistant(page).first();
  await expect(reply).toContainText("[1 é😀]");
  await expect(reply).toHaveAttribute("data-status", "in_progress");
  await expect(page.getByRole("button", { name: "Stop" })).toBeVisible();
  // ...and all of it, exactly once, at the end.
  await expect(reply).toHaveAttribute("data-status", "complete");
  await expect(reply.locator(".content")).toHaveText(dripText(20));
});

test("a message the API refuses stays in the box, with the reason shown", async ({ page }) => {
  await register(page);
  await page.getByRole("button", { name: "+ New chat" }).click();
  const tooLong = "x".repeat(100_001); // content is 1..100,000 characters
  await send(page, tooLong);
  await expect(page.getByRole("alert")).toBeVisible();
  await expect(page.getByLabel("Message", { exact: true })).toHaveValue(tooLong);
  await expect(page.locator("article.message")).toHaveCount(0);
});

test("a reply the provider fails says so under the reply", async ({ page }) => {
  await register(page);
  await newChat(page, "scenario:http-error");
  const reply = assistant(page).first();
  await expect(reply).toHaveAttribute("data-status", "failed");
  await expect(reply.getByRole("alert")).toContainText("provider");
  await expect(reply).toContainText("The reply failed.");
  // Regenerate is the way to try again.
  await expect(reply.getByRole("button", { name: "Regenerate" })).toBeEnabled();
});

test("a reply keeps streaming after a reload", async ({ page }) => {
  await register(page);
  await newChat(page, "scenario:drip chunks:30 every:100ms");
  await expect(assistant(page).first()).toContainText("[3 é😀]");
  await page.reload();
  const reply = assistant(page).first();
  await expect(reply).toHaveAttribute("data-status", "in_progress");
  await expect(reply).toHaveAttribute("data-status", "complete");
  await expect(reply.locator(".content")).toHaveText(dripText(30));
});

test("stop cancels the reply and keeps its text", async ({ page }) => {
  await register(page);
  await newChat(page, "scenario:drip chunks:200 every:100ms");
  const reply = assistant(page).first();
  await expect(reply).toContainText("[2 é😀]");
  await page.getByRole("button", { name: "Stop" }).click();
  await expect(reply).toHaveAttribute("data-status", "incomplete");
  await expect(reply).toContainText("Stopped.");
  const kept = ((await reply.locator(".content").textContent()) ?? "").trim();
  expect(dripText(200).startsWith(kept)).toBe(true);
  expect(kept.length).toBeLessThan(dripText(200).length);
  // The stored reply is the one shown, and it no longer grows.
  await page.reload();
  await expect(reply).toHaveAttribute("data-status", "incomplete");
  await expect(reply.locator(".content")).toHaveText(kept);
  await expect(page.getByRole("button", { name: "Send" })).toBeVisible();
});

test("regenerate makes a second version and the switcher moves between them", async ({ page }) => {
  await register(page);
  await newChat(page, "scenario:drip chunks:2 every:10ms");
  const reply = assistant(page).first();
  await expect(reply).toHaveAttribute("data-status", "complete");
  const firstId = await reply.getAttribute("data-id");
  await reply.getByRole("button", { name: "Regenerate" }).click();
  await expect(reply.getByTestId("version")).toHaveText("2/2");
  await expect(reply).toHaveAttribute("data-status", "complete");
  expect(await reply.getAttribute("data-id")).not.toBe(firstId);

  await reply.getByRole("button", { name: "Previous version" }).click();
  await expect(reply.getByTestId("version")).toHaveText("1/2");
  await expect(reply).toHaveAttribute("data-id", firstId!);
  // The choice is the conversation's active branch: it survives a reload.
  await page.reload();
  await expect(assistant(page).first().getByTestId("version")).toHaveText("1/2");
  await assistant(page).first().getByRole("button", { name: "Next version" }).click();
  await expect(assistant(page).first().getByTestId("version")).toHaveText("2/2");
});

test("editing a message makes a new version with its own reply", async ({ page }) => {
  await register(page);
  await newChat(page, "scenario:echo the original question");
  await expect(assistant(page).first()).toHaveAttribute("data-status", "complete");
  await user(page).first().getByRole("button", { name: "Edit" }).click();
  await page.getByLabel("Edit message").fill("scenario:echo the edited question");
  await page.getByRole("button", { name: "Save and send" }).click();
  await expect(user(page).first().locator(".content")).toHaveText(
    "scenario:echo the edited question",
  );
  await expect(user(page).first().getByTestId("version")).toHaveText("2/2");
  await expect(assistant(page).first()).toContainText("the edited question");
  await expect(assistant(page).first()).toHaveAttribute("data-status", "complete");

  await user(page).first().getByRole("button", { name: "Previous version" }).click();
  await expect(user(page).first().locator(".content")).toHaveText(
    "scenario:echo the original question",
  );
  await expect(assistant(page).first()).toContainText("the original question");
});

test("older messages load as the branch is scrolled up", async ({ page, request }) => {
  // 75 messages made through the API: three pages of the client's 30.
  const username = uniqueName();
  const reg = await request.post("/v1/auth/register", {
    data: { username, email: `${username}@example.com`, password: PASSWORD },
  });
  expect(reg.status()).toBe(201);
  const auth = { Authorization: `Bearer ${(await reg.json()).tokens.access_token}` };
  const conv = await (
    await request.post("/v1/conversations", { data: { title: "Long history" }, headers: auth })
  ).json();
  for (let i = 1; i <= 75; i++) {
    const r = await request.post(`/v1/conversations/${conv.id}/messages`, {
      data: { role: i % 2 ? "user" : "assistant", content: `message number ${i}` },
      headers: auth,
    });
    expect(r.status()).toBe(201);
  }

  await page.goto("/");
  await page.getByLabel("Username or email").fill(username);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Log in" }).last().click();
  await page.locator("li.conversation", { hasText: "Long history" }).locator(".title").click();
  const messages = page.locator("article.message");
  await expect(messages.last()).toHaveText(/message number 75/);
  await expect(messages).toHaveCount(30);
  // The newest is in view, not the oldest loaded.
  await expect(messages.last()).toBeInViewport();
  await expect(messages.first()).not.toBeInViewport();

  const byNumber = (n: number) =>
    messages.filter({
      has: page.locator(".content", { hasText: new RegExp(`^\\s*message number ${n}\\s*$`) }),
    });
  // Reaching the top loads the page before it; the reader stays where they
  // were (the message that was first is still in view), not at the top.
  for (const [count, oldestShown] of [
    [60, 46],
    [75, 16],
  ]) {
    await byNumber(oldestShown).scrollIntoViewIfNeeded();
    await expect(messages).toHaveCount(count);
    await expect(byNumber(oldestShown)).toBeInViewport();
  }
  await expect(messages.first().locator(".content")).toHaveText("message number 1");
  const texts = await messages.locator(".content").allTextContents();
  expect(texts.map((t) => Number(/\d+/.exec(t)?.[0]))).toEqual(
    Array.from({ length: 75 }, (_, i) => i + 1),
  );
});

test("the sidebar manages conversations: rename, pin, archive, delete", async ({ page }) => {
  await register(page);
  await newChat(page, "scenario:ok one");
  await expect(assistant(page).first()).toHaveAttribute("data-status", "complete");
  const item = page.locator("li.conversation.active");
  await item.getByRole("button", { name: "Rename" }).click();
  await item.getByLabel("Title").fill("Renamed in the browser");
  await item.getByRole("button", { name: "Save" }).click();
  await expect(page.locator("li.conversation.active .title")).toHaveText("Renamed in the browser");
  await page.locator("li.conversation.active").getByRole("button", { name: "Pin" }).click();
  await expect(page.locator("li.conversation.active .title")).toContainText("📌");

  await page.locator("li.conversation.active").getByRole("button", { name: "Archive" }).click();
  await expect(page.locator("li.conversation", { hasText: "Renamed in the browser" })).toHaveCount(
    0,
  );
  await page.getByLabel("Archived").check();
  const archived = page.locator("li.conversation", { hasText: "Renamed in the browser" });
  await expect(archived).toBeVisible();
  page.once("dialog", (d) => void d.accept());
  await archived.getByRole("button", { name: "Delete" }).click();
  await expect(archived).toHaveCount(0);
  await expect(page.getByText("No archived conversations.")).toBeVisible();
});

test("search finds a message and opens its conversation", async ({ page }) => {
  await register(page);
  const word = `zebrafish${Date.now().toString(36)}`;
  await newChat(page, `scenario:ok tell me about ${word} please`);
  await expect(assistant(page).first()).toHaveAttribute("data-status", "complete");
  await page.getByRole("button", { name: "+ New chat" }).click();
  await expect(user(page)).toHaveCount(0);

  await page.getByLabel("Search messages").fill(word);
  const result = page.getByRole("list", { name: "Search results" }).locator("li").first();
  await expect(result.locator("mark")).toHaveText(word);
  await result.locator("a").click();
  await expect(user(page).first()).toContainText(word);
});

test("a share link opens read-only in a fresh browser context and can be revoked", async ({
  page,
  browser,
}) => {
  await register(page);
  await newChat(page, "scenario:echo shared words");
  await expect(assistant(page).first()).toHaveAttribute("data-status", "complete");
  await page.getByRole("button", { name: "Share" }).click();
  await page.getByRole("button", { name: "Create link" }).click();
  const link = await page.getByLabel("Share link", { exact: true }).inputValue();
  expect(link).toMatch(/\/s\/.+/);

  const stranger = await browser.newContext();
  try {
    const view = await stranger.newPage();
    await view.goto(link);
    await expect(view.getByTestId("shared-title")).toBeVisible();
    await expect(view.locator("article.message.user")).toHaveText("scenario:echo shared words");
    await expect(view.locator("article.message.assistant")).toContainText("shared words");
    await expect(view.getByRole("textbox", { name: "Message" })).toHaveCount(0);

    await page.getByRole("button", { name: "Revoke" }).click();
    await expect(page.getByText("No links yet.")).toBeVisible();
    await view.reload();
    await expect(view.getByRole("alert")).toContainText("This link does not work");
  } finally {
    await stranger.close();
  }
});

test("export downloads the history and import loads it into another account", async ({
  page,
}, testInfo) => {
  await register(page);
  const title = `Exported ${uniqueName("t")}`;
  await newChat(page, "scenario:echo carried across accounts");
  await expect(assistant(page).first()).toHaveAttribute("data-status", "complete");
  const item = page.locator("li.conversation.active");
  await item.getByRole("button", { name: "Rename" }).click();
  await item.getByLabel("Title").fill(title);
  await item.getByRole("button", { name: "Save" }).click();
  await expect(page.locator("li.conversation.active .title")).toHaveText(title);

  const download = page.waitForEvent("download");
  await page.getByRole("button", { name: "Export" }).click();
  const file = testInfo.outputPath("export.ndjson");
  await (await download).saveAs(file);
  const lines = (await readFile(file, "utf8")).trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(JSON.parse(lines[0]).conversation.title).toBe(title);

  await page.getByRole("button", { name: "Log out" }).click();
  await register(page);
  await expect(page.getByText("No conversations yet.")).toBeVisible();
  await page.getByTestId("import-file").setInputFiles(file);
  await expect(page.getByTestId("transfer-status")).toHaveText(
    "Imported 1 conversation(s), skipped 0.",
  );
  await page.locator("li.conversation", { hasText: title }).locator(".title").click();
  await expect(user(page).first().locator(".content")).toHaveText(
    "scenario:echo carried across accounts",
  );
  await expect(assistant(page).first()).toContainText("carried across accounts");
});

test("a reply that tries to run script stays inert", async ({ page }) => {
  const attack =
    'scenario:echo <img src=x onerror="window.__xss=1"> ' +
    "[click me](javascript:window.__xss=2) <script>window.__xss=3</script> " +
    '<a href="javascript:window.__xss=4">raw link</a> <svg onload="window.__xss=5"></svg> ' +
    '<iframe src="javascript:window.__xss=6"></iframe>';
  // Watch the live document from before the app starts: any element that
  // ever carries an event handler or a javascript: URL, and any CSP violation
  // by an element of the page (parsing inside DOMPurify's detached document
  // also reports blocked handlers, with the document as target).
  await page.addInitScript(() => {
    const w = window as unknown as { __unsafe: string[] };
    w.__unsafe = [];
    const check = (el: Element) => {
      for (const a of Array.from(el.attributes)) {
        if (/^on/i.test(a.name) || /^\s*javascript:/i.test(a.value)) w.__unsafe.push(el.outerHTML);
      }
      if (/^(script|iframe|object|embed)$/i.test(el.tagName) && el.closest(".message"))
        w.__unsafe.push(el.outerHTML);
    };
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.type === "attributes") check(r.target as Element);
        r.addedNodes.forEach((n) => {
          if (n instanceof Element) [n, ...Array.from(n.querySelectorAll("*"))].forEach(check);
        });
      }
    }).observe(document, { subtree: true, childList: true, attributes: true });
    document.addEventListener("securitypolicyviolation", (e) => {
      if (e.target instanceof Element) w.__unsafe.push(`CSP: ${e.target.outerHTML}`);
    });
  });
  await register(page);
  await newChat(page, attack);
  const reply = assistant(page).first();
  await expect(reply).toHaveAttribute("data-status", "complete");
  // The reply holds the attack (the echo repeats it) and it rendered.
  await expect(reply.getByText("click me")).toBeVisible();
  await expect(reply.getByText("raw link")).toBeVisible();
  // Nothing of it runs: no handler attributes, no javascript: URLs, no
  // script or frame elements.
  await expect(reply.locator("[onerror], [onload], script, iframe")).toHaveCount(0);
  for (const href of await reply
    .locator("a")
    .evaluateAll((as) => as.map((a) => a.getAttribute("href")))) {
    expect(href ?? "").not.toMatch(/^\s*javascript:/i);
  }
  await reply.getByText("click me").click({ noWaitAfter: true });
  await reply.getByText("raw link").click({ noWaitAfter: true });
  // The user's own message is shown as text, not HTML.
  await expect(user(page).first().locator(".content")).toHaveText(attack);
  const inert = async () => {
    const state = await page.evaluate(() => {
      const w = window as unknown as { __xss?: number; __unsafe: string[] };
      return { xss: w.__xss ?? null, unsafe: w.__unsafe };
    });
    expect(state).toEqual({ xss: null, unsafe: [] });
  };
  await inert();
  // Rendered from the stored reply rather than the stream: the same.
  await page.reload();
  await expect(assistant(page).first()).toHaveAttribute("data-status", "complete");
  await expect(assistant(page).first().getByText("raw link")).toBeVisible();
  await inert();
});

test("a phone-sized screen shows the conversation with the list in a drawer", async ({ page }) => {
  await page.setViewportSize({ width: 390, height: 800 });
  await register(page);
  await expect(page.locator(".sidebar")).not.toBeInViewport();
  await page.getByRole("button", { name: "Conversations" }).click();
  await expect(page.locator(".sidebar")).toBeInViewport();
  await page
    .getByRole("button", { name: "Close conversations" })
    .click({ position: { x: 370, y: 400 } });
  await expect(page.locator(".sidebar")).not.toBeInViewport();
  await page.getByRole("button", { name: "Conversations" }).click();
  await page.getByRole("button", { name: "+ New chat" }).click();
  await expect(page.locator(".sidebar")).not.toBeInViewport();
  await send(page, "scenario:ok small screen");
  await expect(assistant(page).first()).toHaveText(/Hello, world/);
});
