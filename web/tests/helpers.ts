import { expect, type Page } from "@playwright/test";

/** A fresh user's name: tests never share an account. */
export function uniqueName(prefix = "u"): string {
  return `${prefix}_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}

export const PASSWORD = "Browser-test-1";

/** Registers a new account through the form and waits for the chat screen. */
export async function register(page: Page, username = uniqueName()): Promise<string> {
  await page.goto("/");
  await page.getByRole("tab", { name: "Register" }).click();
  await page.getByLabel("Username", { exact: true }).fill(username);
  await page.getByLabel("Email").fill(`${username}@example.com`);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByTestId("username")).toHaveText(username);
  return username;
}

/** Starts a conversation and sends one message with the keyboard. */
export async function newChat(page: Page, text: string) {
  await page.getByRole("button", { name: "+ New chat" }).click();
  await expect(page).toHaveURL(/\/c\//);
  await send(page, text);
}

export async function send(page: Page, text: string) {
  const box = page.getByLabel("Message", { exact: true });
  await box.fill(text);
  await box.press("Enter");
}

/** The fake provider's "drip" reply of n pieces (tests/e2e/fake_provider_test.go). */
export function dripText(n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += `[${i} é😀]`;
  return s;
}

export const assistant = (page: Page) => page.locator("article.message.assistant");
export const user = (page: Page) => page.locator("article.message.user");
