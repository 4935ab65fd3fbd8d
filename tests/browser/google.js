// "Sign in with Google" in a real browser, against the test's OpenID
// provider: /login, the button, the provider's login and consent pages,
// back to the portal.
// Usage: node google.js BASE_URL LOGIN
// Prints one JSON line describing what the browser saw.
const { launch, loopbackOnly, run } = require('./common');

run(async () => {
  const [base, login] = process.argv.slice(2);
  const browser = await launch();
  try {
    const context = await browser.newContext();
    await loopbackOnly(context);
    const page = await context.newPage();
    const seen = {};
    await page.goto(`${base}/login`);
    await Promise.all([page.waitForURL(/\/interaction\//), page.click('text=Sign in with Google')]);
    seen.providerPage = (await page.title()).trim();
    await page.fill('input[name=login]', login);
    await page.fill('input[name=password]', 'any password');
    await Promise.all([page.waitForNavigation(), page.click('button:has-text("Sign-in")')]);
    await Promise.all([page.waitForURL(`${base}/**`), page.click('button:has-text("Continue")')]);
    seen.backAt = new URL(page.url()).pathname;
    seen.greeting = (await page.textContent('h1')).trim();
    console.log(JSON.stringify(seen));
  } finally {
    await browser.close();
  }
});
