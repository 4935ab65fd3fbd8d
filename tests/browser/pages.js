// Every page at 1280 and 375 pixels wide: a full-page screenshot each, and
// axe-core's accessibility check run in the page.
// Usage: node pages.js OUT_DIR PAGES.json
// PAGES.json: { "pages": [{ "name", "url", "signIn": { base, email, password }? }] }
// Prints one JSON line: the screenshots written and every violation axe
// found, with its impact.
const fs = require('node:fs');
const path = require('node:path');
const { launch, loopbackOnly, run } = require('./common');

const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const WIDTHS = [1280, 375];

run(async () => {
  const [outDir, pagesFile] = process.argv.slice(2);
  const { pages } = JSON.parse(fs.readFileSync(pagesFile, 'utf8'));
  fs.mkdirSync(outDir, { recursive: true });
  const browser = await launch();
  const result = { screenshots: [], violations: [] };
  try {
    for (const width of WIDTHS) {
      for (const entry of pages) {
        const context = await browser.newContext({ viewport: { width, height: 800 } });
        await loopbackOnly(context);
        const page = await context.newPage();
        if (entry.signIn) {
          await page.goto(`${entry.signIn.base}/login`);
          await page.fill('#email', entry.signIn.email);
          await page.fill('#password', entry.signIn.password);
          await Promise.all([page.waitForNavigation(), page.click('button:has-text("Sign in")')]);
        }
        await page.goto(entry.url);
        const file = path.join(outDir, `${entry.name}-${width}.png`);
        await page.screenshot({ path: file, fullPage: true });
        result.screenshots.push(path.basename(file));
        // Evaluated through the DevTools protocol: our Content-Security-Policy
        // (no script at all) stays in force for the page itself.
        await page.evaluate(AXE);
        const found = await page.evaluate(async () => {
          const report = await window.axe.run(document, {
            runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
          });
          return report.violations.map((v) => ({
            id: v.id,
            impact: v.impact,
            help: v.help,
            targets: v.nodes.map((n) => n.target.join(' ')),
          }));
        });
        for (const violation of found) {
          result.violations.push({ page: entry.name, width, ...violation });
        }
        await context.close();
      }
    }
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(result));
});
