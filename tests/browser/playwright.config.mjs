// Playwright drives Debian's chromium (apt-get install -y chromium), never a downloaded browser.
// The server is started by the runner (crates/portolan-cli/tests/browser.rs), which passes its
// address in PORTOLAN_URL and where to write screenshots in SCREENSHOT_DIR.
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: './e2e',
  workers: 1,
  reporter: 'list',
  timeout: 120_000,
  expect: { timeout: 15_000 },
  outputDir: process.env.PLAYWRIGHT_OUTPUT_DIR ?? '../../target/playwright-results',
  use: {
    baseURL: process.env.PORTOLAN_URL ?? 'http://127.0.0.1:7070',
    headless: true,
    acceptDownloads: true,
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
             '--disable-component-update', '--disable-sync', '--no-first-run'],
    },
  },
});
