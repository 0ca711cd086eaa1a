// The demo page in two headless Chromium pages against a real `kasagi serve --static-dir
// dist/demo`, which tests/js/test_demo_browser.py starts (KASAGI_HTTP_URL). One page goes
// through a TCP proxy that the test cuts, to drop its socket as a network failure would.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { chromium, type Page } from "playwright-core";
import type { KasagiClient } from "../../src/client.js";
import type { Doc } from "../../src/protocol.js";
import type { Room } from "../../src/room.js";
import { TcpProxy } from "./tcpProxy.js";

declare const kasagiDemo: { client: KasagiClient; room: Room }; // the page's global

const httpUrl = process.env["KASAGI_HTTP_URL"];
if (httpUrl === undefined)
  throw new Error("KASAGI_HTTP_URL is not set: run this through tests/js/test_demo_browser.py");
const artifacts = process.env["KASAGI_ARTIFACTS"] ?? "artifacts";
const executablePath = process.env["KASAGI_CHROMIUM"] ?? "/usr/bin/chromium";

const playerId = (page: Page) => page.evaluate(() => kasagiDemo.room.playerId as string);
const roomState = (page: Page) =>
  page.evaluate(() => ({ state: kasagiDemo.room.state, version: kasagiDemo.room.version }));

// Waits until both pages hold the room at the same version, checks that their states are
// equal, and returns it.
async function converged(a: Page, b: Page): Promise<Awaited<ReturnType<typeof roomState>>> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const [first, second] = [await roomState(a), await roomState(b)];
    if (first.version === second.version) {
      assert.deepEqual(second.state, first.state);
      return first;
    }
    assert.ok(Date.now() < deadline, `versions ${first.version} and ${second.version} never met`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// Moves the mouse over `page`'s board to (x, y), as fractions of the board.
async function moveMouse(page: Page, x: number, y: number): Promise<void> {
  const board = await page.locator("#board").boundingBox();
  assert.ok(board !== null);
  await page.mouse.move(board.x + board.width * x, board.y + board.height * y);
}

// Waits until `page` draws the dot of `id` at (x, y), as fractions of the board (give or
// take half a percent: mouse positions are whole pixels).
function dotAt(page: Page, id: string, x: number, y: number): Promise<unknown> {
  return page.waitForFunction(
    ([id, x, y]) => {
      const dot = document.querySelector<HTMLElement>(`[data-player-id="${id}"]`);
      const near = (a: string | undefined, b: number) => Math.abs(Number(a) - b) < 0.005;
      return dot !== null && near(dot.dataset["x"], x) && near(dot.dataset["y"], y);
    },
    [id, x, y] as const,
  );
}

test("two pages share the board, and a page whose socket drops reconnects and converges", async (t) => {
  const serverPort = Number(new URL(httpUrl).port);
  const proxy = await TcpProxy.start(serverPort);
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
  t.after(async () => {
    await browser.close();
    await proxy.close();
  });
  const room = `e2e-${process.pid}`;
  const viewport = { width: 980, height: 720 };
  const direct = await browser.newPage({ viewport });
  const dropped = await browser.newPage({ viewport });
  await direct.goto(`${httpUrl}/?room=${room}`);
  await dropped.goto(`http://127.0.0.1:${proxy.port}/?room=${room}`);
  for (const page of [direct, dropped])
    await page.waitForFunction(() => document.querySelectorAll(".dot").length === 2);
  const [directId, droppedId] = [await playerId(direct), await playerId(dropped)];

  // The mouse moves a page's dot, and the arrow keys; the other page draws it there.
  await moveMouse(dropped, 0.25, 0.75);
  await dotAt(direct, droppedId, 0.25, 0.75);
  await moveMouse(direct, 0.6, 0.4);
  await dotAt(direct, directId, 0.6, 0.4);
  await direct.keyboard.press("ArrowLeft");
  await dotAt(dropped, directId, 0.58, 0.4);

  // The dropped page's socket is reset, and the other page moves on without it...
  const versionAtCut = (await roomState(dropped)).version as number;
  proxy.cut();
  await dropped.waitForFunction(() => document.getElementById("connection")?.textContent === "reconnecting…");
  for (let i = 0; i < 3; i += 1) await direct.keyboard.press("ArrowUp");
  await dotAt(direct, directId, 0.58, 0.34);

  // ...until the network is back: it resumes the same player and converges.
  proxy.restore();
  await dropped.waitForFunction(
    () => kasagiDemo.client.stats.reconnects === 1 && kasagiDemo.room.synced,
    null,
    {
      timeout: 10_000,
    },
  );
  assert.equal(await playerId(dropped), droppedId);
  const final = await converged(direct, dropped);
  assert.ok((final.version as number) > versionAtCut);
  const me = (final.state["players"] as Record<string, Doc>)[directId] as Doc;
  await dotAt(dropped, directId, me["x"] as number, me["y"] as number);

  // The status line shows the version, the latency and the bytes received per second.
  await dropped.waitForFunction(() => document.getElementById("latency")?.textContent?.endsWith(" ms"));
  const status = await dropped.locator("#status").innerText();
  assert.match(status, new RegExp(`version\\s+${final.version}`));
  assert.match(status, /latency\s+[\d.]+ ms/);
  assert.match(status, /received\s+\d+ B\/s/);
  assert.match(status, /players\s+2/);
  assert.match(status, /reconnects\s+1/);

  mkdirSync(artifacts, { recursive: true });
  await dropped.screenshot({ path: join(artifacts, "demo-board.png"), fullPage: true });
});
