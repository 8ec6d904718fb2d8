// Browser smoke test of the canvas component in a real Chromium (Debian's /usr/bin/chromium, never a
// downloaded one). Serve the demo page first, then run this against it:
//   .venv/bin/streamlit run app/canvas/demo.py --server.headless true --server.port 8599 -- zoo:lenet5 &
//   cd app/canvas/frontend && npm ci && npm run e2e -- http://localhost:8599 /tmp/canvas-shots
// It edits a layer (live shapes), types an invalid kernel (error badge), undoes, deletes a layer with the
// Delete key (dangling-input error), drops a palette layer, wires it by dragging handles, saves a version,
// drops a layer onto an edge (inserted in between), and writes a screenshot per step. Exits non-zero on the first step that fails.
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const url = process.argv[2] || "http://localhost:8599";
const out = process.argv[3] || "/tmp/canvas-shots";
mkdirSync(out, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
const problems = [];
page.on("pageerror", (e) => problems.push(e.message));
const step = async (name, fn) => {
  const t0 = Date.now();
  await fn();
  await page.screenshot({ path: `${out}/${name}.png` });
  console.log(`ok  ${name} (${Date.now() - t0} ms)`);
};
try {
  let frame;
  const N = (id) => frame.locator(`.react-flow__node[data-id="${id}"]`);
  const field = (name) => frame.locator(".ts-field", { hasText: name }).locator("input").first();
  await step("1-load", async () => {
    await page.goto(url);
    frame = await (await page.waitForSelector("iframe", { timeout: 30000 })).contentFrame();
    await frame.waitForSelector('.react-flow__node[data-id="c1"]', { timeout: 30000 });
  });
  await step("2-edit-out-channels", async () => {
    await N("c1").click();
    await field("out channels").fill("8");
    await field("out channels").press("Enter");
    await frame.waitForSelector('.react-flow__node[data-id="c3"] .ts-chip:has-text("16×8×5×5")', { timeout: 20000 });
  });
  await step("3-invalid-kernel", async () => {
    await N("c3").click();
    await field("kernel").fill("0, 0");
    await field("kernel").press("Enter");
    await frame.waitForSelector('.react-flow__node[data-id="c3"] .ts-node-error:has-text("kernel")', { timeout: 20000 });
  });
  await step("4-undo", async () => {
    await frame.locator("button", { hasText: "Undo" }).click();
    await frame.waitForSelector('.react-flow__node[data-id="c3"] .ts-node-error', { state: "detached", timeout: 20000 });
  });
  await step("5-delete-key", async () => {
    await N("s2").click();
    await page.keyboard.press("Delete");
    await frame.waitForSelector('.react-flow__node[data-id="c3"] .ts-node-error:has-text("not connected")', { timeout: 20000 });
  });
  await step("6-drop-and-wire", async () => {
    const flow = await frame.locator(".ts-flow").boundingBox();
    await frame.locator(".ts-pal-item", { hasText: "Max pool 2D" })
      .dragTo(frame.locator(".ts-flow .react-flow__pane"), { targetPosition: { x: flow.width * 0.72, y: flow.height * 0.42 } });
    await frame.waitForSelector('.react-flow__node[data-id="maxpool2d_1"]', { timeout: 10000 });
    for (const [src, dst] of [["c1_tanh", "maxpool2d_1"], ["maxpool2d_1", "c3"]]) {
      const a = await N(src).locator(".react-flow__handle.source").first().boundingBox();
      const b = await N(dst).locator(".react-flow__handle.target").first().boundingBox();
      await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
      await page.mouse.down();
      await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 12 });
      await page.mouse.up();
    }
    await frame.waitForSelector('.ts-status-ok:has-text("valid")', { timeout: 20000 });
  });
  await step("7-save-version", async () => {
    await frame.locator("button", { hasText: "Save version" }).click();
    await page.waitForSelector("text=version 2", { timeout: 20000 });
    frame = await (await page.waitForSelector("iframe")).contentFrame();
    await frame.waitForSelector('.react-flow__node[data-id="maxpool2d_1"]', { timeout: 20000 });
  });
  await step("8-drop-on-edge", async () => {
    const box = await frame.locator('.react-flow__edge[data-id="maxpool2d_1:out0->c3:in0"]').boundingBox();
    const pane = await frame.locator(".ts-flow .react-flow__pane").boundingBox();
    await frame.locator(".ts-pal-item", { hasText: "ReLU6" })
      .dragTo(frame.locator(".ts-flow .react-flow__pane"), { targetPosition: { x: box.x + box.width / 2 - pane.x, y: box.y + box.height / 2 - pane.y } });
    await frame.waitForSelector('.react-flow__edge[data-id="maxpool2d_1:out0->relu6_1:in0"]', { state: "attached", timeout: 10000 });
    await frame.waitForSelector('.react-flow__edge[data-id="relu6_1:out0->c3:in0"]', { state: "attached", timeout: 10000 });
    await frame.waitForSelector('.ts-status-ok:has-text("valid")', { timeout: 20000 });
  });
  if (problems.length) throw new Error(`page errors: ${problems.join("; ")}`);
} catch (e) {
  console.error(`FAILED: ${e.message}`);
  await page.screenshot({ path: `${out}/failed.png` });
  process.exitCode = 1;
} finally {
  await browser.close();
}
