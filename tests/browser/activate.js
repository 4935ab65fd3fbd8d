// A customer in a real browser: open the activation link, set name and
// password, click Save, land on the portal, sign out, sign in again.
// Usage: node activate.js LINK NAME PASSWORD EMAIL
// Prints one JSON line describing what the browser saw; exits non-zero on
// any failure. Chromium comes from Debian (/usr/bin/chromium, or CHROMIUM).
const { chromium } = require('playwright-core');

async function main() {
  const [link, name, password, email] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    const seen = {};
    await page.goto(link);
    seen.prefilledName = await page.inputValue('#name');
    seen.shownEmail = await page.inputValue('#email');
    await page.fill('#name', name);
    await page.fill('#password', password);
    await page.fill('#confirm', password);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    seen.afterSave = new URL(page.url()).pathname;
    seen.greeting = (await page.textContent('h1')).trim();
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    seen.afterSignOut = new URL(page.url()).pathname;
    await page.fill('#email', email);
    await page.fill('#password', password);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    seen.afterSignIn = new URL(page.url()).pathname;
    await page.goto(link);
    seen.linkAgain = (await page.textContent('h1')).trim();
    console.log(JSON.stringify(seen));
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
