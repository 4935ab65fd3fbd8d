// "Forgot your password?" in a real browser: open the reset link, choose a
// new password, land on the portal; sign out; the old password fails, the
// new one works; the used link is dead.
// Usage: node reset.js LINK EMAIL OLD_PASSWORD NEW_PASSWORD
// Prints one JSON line describing what the browser saw.
const { launch, loopbackOnly, run } = require('./common');

run(async () => {
  const [link, email, oldPassword, newPassword] = process.argv.slice(2);
  const browser = await launch();
  try {
    const context = await browser.newContext();
    await loopbackOnly(context);
    const page = await context.newPage();
    const seen = {};
    await page.goto(link);
    seen.heading = (await page.textContent('h1')).trim();
    await page.fill('#password', newPassword);
    await page.fill('#confirm', newPassword);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    seen.afterSave = new URL(page.url()).pathname;
    await Promise.all([page.waitForNavigation(), page.click('button:has-text("Sign out")')]);
    await page.fill('#email', email);
    await page.fill('#password', oldPassword);
    await Promise.all([page.waitForNavigation(), page.click('button:has-text("Sign in")')]);
    seen.oldPassword = (await page.textContent('.error')).trim();
    await page.fill('#password', newPassword);
    await Promise.all([page.waitForNavigation(), page.click('button:has-text("Sign in")')]);
    seen.newPassword = new URL(page.url()).pathname;
    await page.goto(link);
    seen.linkAgain = (await page.textContent('h1')).trim();
    console.log(JSON.stringify(seen));
  } finally {
    await browser.close();
  }
});
