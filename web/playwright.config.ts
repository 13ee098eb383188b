import { defineConfig } from "@playwright/test";

// Browser tests of the client against a running stack (BASE_URL), in
// Debian's Chromium (no downloaded browser). tests/e2e/webclient_test.go
// starts the real stack and runs them; see docs/web-client.md.
export default defineConfig({
  testDir: "tests",
  outputDir: process.env.WEB_TEST_OUTPUT ?? "test-results",
  timeout: 60_000,
  expect: { timeout: 15_000 },
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  use: {
    baseURL: process.env.BASE_URL ?? "http://127.0.0.1:8080",
    screenshot: "only-on-failure",
    trace: "off",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      args: ["--no-sandbox", "--disable-dev-shm-usage"],
    },
  },
});
