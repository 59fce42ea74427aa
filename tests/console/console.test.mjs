// The merchant console in a real browser: Debian's Chromium, headless, driven by
// Playwright (playwright-core: it uses the browser it is given and downloads none).
//
//   LARDER_URL=http://127.0.0.1:3000 node tests/console/console.test.mjs
//
// A new merchant signs up and seeds; a customer, in a browser context of its own, places orders
// until the onion falls below 50 %; the merchant's page shows the gauge fall, the alert appear with
// its email sent, and the alert re-armed after a restock; the page fits a phone's width. Run by
// `cargo test --test e2e console_in_a_browser` against a stack of its own. CHROMIUM names the
// browser (/usr/bin/chromium); SCREENSHOT=path saves the merchant's page once the alert is in.
import { chromium } from "playwright-core";

const base = process.env.LARDER_URL ?? "http://127.0.0.1:3000";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const screenshot = process.env.SCREENSHOT;
const WAIT = { timeout: 30_000 };

const suffix = Math.random().toString(36).slice(2, 10);
const shop = `Browser Grill ${suffix}`;

function step(what) {
  console.log(`- ${what}`);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu"],
});
let failed = false;
const pages = [];
try {
  const merchantContext = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const merchant = await merchantContext.newPage();
  pages.push(["merchant", merchant]);
  const problems = [];
  merchant.on("pageerror", (error) => problems.push(error.message));

  step("a new merchant signs up from the console");
  await merchant.goto(`${base}/`);
  await merchant.waitForURL(/\/console\/(#merchant)?$/);
  const signup = merchant.locator("#merchant-signup");
  await signup.locator("[name=name]").fill(shop);
  await signup.locator("[name=alert_email]").fill(`alerts-${suffix}@grill.example`);
  await signup.locator("[name=email]").fill(`owner-${suffix}@grill.example`);
  await signup.locator("[name=password]").fill("grill-password");
  await signup.locator("button[type=submit]").click();
  await merchant.locator("#feed-state[data-state=live]").waitFor(WAIT);
  await signup.waitFor({ ...WAIT, state: "hidden" });

  step("it seeds its catalogue and sees its ingredients full and armed");
  await merchant.locator("#seed").click();
  const onion = merchant.locator('[data-ingredient="Onion"]');
  await merchant.locator('[data-ingredient="Beef"][data-percent="100"][data-alert="armed"]').waitFor(WAIT);
  await merchant.locator('[data-ingredient="Cheese"]').waitFor(WAIT);
  await merchant.locator('[data-ingredient="Onion"]').waitFor(WAIT);

  step("a customer registers and orders burgers until the onion is below half");
  const customerContext = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const customer = await customerContext.newPage();
  pages.push(["customer", customer]);
  customer.on("pageerror", (error) => problems.push(error.message));
  await customer.goto(`${base}/console/#customer`);
  const login = customer.locator("#customer-login");
  await login.locator("[name=email]").fill(`eater-${suffix}@example.com`);
  await login.locator("[name=password]").fill("password-123");
  await customer.locator("#customer-register").click();
  await login.waitFor({ ...WAIT, state: "hidden" });
  const burger = customer.locator("form.product", { hasText: shop });
  await burger.waitFor(WAIT);
  // 1 kg of onion at 20 g a burger: three orders of 10 leave 400 g, 40 %.
  for (let placed = 1; placed <= 3; placed++) {
    await burger.locator("[name=quantity]").fill("10");
    await burger.locator("button[type=submit]").click();
    await customer.locator("#my-orders .order").nth(placed - 1).waitFor(WAIT);
    // The order's card follows it live: confirmed, then on to delivery. A new card has no
    // status until its first event arrives, so the attribute must be there to count.
    await customer
      .locator(`#my-orders .order[data-status]:not([data-status="pending"])`)
      .nth(placed - 1)
      .waitFor(WAIT);
  }
  const statuses = await customer.locator("#my-orders .order").evaluateAll((cards) =>
    cards.map((card) => card.dataset.status),
  );
  if (statuses.some((status) => !["confirmed", "dispatched", "delivered"].includes(status))) {
    throw new Error(`an order was not confirmed: ${statuses}`);
  }

  step("the merchant sees the orders, the gauge fall and the alert with its email sent");
  await merchant.locator("#orders tr[data-order-id]").nth(2).waitFor(WAIT);
  await merchant.locator('[data-ingredient="Onion"][data-percent="40"][data-alert="alerted"][data-low="true"]').waitFor(WAIT);
  const width = await onion.locator(".fill").evaluate((fill) => fill.style.width);
  if (width !== "40%") throw new Error(`the onion gauge is ${width} wide, not 40%`);
  await merchant.locator('[data-ingredient="Beef"][data-percent="77"][data-alert="armed"]').waitFor(WAIT);
  await merchant.locator('#alerts tr[data-alert-ingredient="Onion"][data-email-status="sent"]').waitFor(WAIT);
  const alerts = await merchant.locator("#alerts tr[data-alert-ingredient]").count();
  if (alerts !== 1) throw new Error(`${alerts} alerts shown, not one`);
  if (screenshot) {
    await merchant.screenshot({ path: screenshot, fullPage: true });
    step(`screenshot saved to ${screenshot}`);
  }

  step("a restock above half re-arms the alert");
  await onion.locator("[name=amount]").fill("600");
  await onion.locator(".restock button").click();
  await merchant.locator('[data-ingredient="Onion"][data-percent="100"][data-alert="armed"][data-low="false"]').waitFor(WAIT);

  step("the console fits a phone's width");
  await merchant.setViewportSize({ width: 390, height: 844 });
  for (const [name, page] of pages) {
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) throw new Error(`the ${name} page is ${overflow} px wider than a phone`);
  }
  if (problems.length) throw new Error(`the page threw: ${problems.join("; ")}`);
  step("all good");
} catch (error) {
  failed = true;
  console.error(`FAILED: ${error.stack || error}`);
  for (const [name, page] of pages) {
    const path = `${process.env.TMPDIR ?? "/tmp"}/larder-console-${name}-${suffix}.png`;
    await page.screenshot({ path, fullPage: true }).catch(() => {});
    console.error(`the ${name} page as it was: ${path}`);
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
