// The Kasagi demo: every open tab is a dot on a shared board. This tab joins a room (query
// parameter `room`, default "board") with a colour and a position, sends its moves as merge
// patches of its own player entry, and draws every player's dot from the mirrored room state.
import { connect } from "./kasagi.browser.js";

const SEND_INTERVAL_MS = 33; // at most ~30 moves a second: smooth, and far under the rate limit
const KEY_STEP = 0.02; // of the board's size, per arrow key press
const KEYS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

const params = new URLSearchParams(location.search);
const roomId = params.get("room") ?? "board";
const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/sync`;
const board = document.getElementById("board");
const show = (id, text) => (document.getElementById(id).textContent = text);

const client = await connect(url, { encoding: params.get("encoding") ?? "msgpack" }).catch((error) => {
  show("connection", `cannot connect: ${error.message}`);
  throw error;
});
const color = `hsl(${Math.floor(Math.random() * 360)} 70% 50%)`;
const room = await client.join(roomId, { color, x: Math.random(), y: Math.random() });
globalThis.kasagiDemo = { client, room }; // for the browser console and the end-to-end test

// ---------------------------------------------------------------------------------------
// Moving: the position asked for last is sent at most every SEND_INTERVAL_MS.

let target = null; // the position asked for last
let unsent = false; // target changed since the last update was sent
let sendTimer = null;

function moveTo(x, y) {
  target = { x: Math.min(1, Math.max(0, x)), y: Math.min(1, Math.max(0, y)) };
  unsent = true;
  if (sendTimer === null) sendTarget();
}

function sendTarget() {
  sendTimer = null;
  if (!unsent) return;
  unsent = false;
  room.update(target).catch((error) => show("connection", `update refused: ${error.code}`));
  sendTimer = setTimeout(sendTarget, SEND_INTERVAL_MS);
}

board.addEventListener("pointermove", (event) => {
  const box = board.getBoundingClientRect();
  moveTo((event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height);
});

addEventListener("keydown", (event) => {
  const step = KEYS[event.key];
  const from = target ?? room.me;
  if (step === undefined || from === undefined) return;
  event.preventDefault();
  moveTo(from.x + step[0] * KEY_STEP, from.y + step[1] * KEY_STEP);
});

// ---------------------------------------------------------------------------------------
// Drawing: one element per player, redrawn once per frame after changes.

let drawScheduled = false;

function draw() {
  drawScheduled = false;
  const seen = new Set();
  for (const [playerId, player] of Object.entries(room.players)) {
    seen.add(playerId);
    let dot = board.querySelector(`[data-player-id="${playerId}"]`);
    if (dot === null) {
      dot = document.createElement("div");
      dot.className = playerId === room.playerId ? "dot me" : "dot";
      dot.dataset.playerId = playerId;
      board.append(dot);
    }
    dot.style.left = `${player.x * 100}%`;
    dot.style.top = `${player.y * 100}%`;
    dot.style.background = player.color;
    dot.dataset.x = player.x;
    dot.dataset.y = player.y;
  }
  for (const dot of board.querySelectorAll(".dot")) {
    if (!seen.has(dot.dataset.playerId)) dot.remove();
  }
  show("players", seen.size);
  show("version", room.version);
}

room.on("change", () => {
  if (!drawScheduled) requestAnimationFrame(draw);
  drawScheduled = true;
});
draw();

// ---------------------------------------------------------------------------------------
// Status: connection, latency (PING round trip) and bytes received per second.

show("room", roomId);
show("connection", `connected (${client.encoding})`);
client.on("open", ({ encoding }) => {
  show("connection", `connected (${encoding})`);
  show("reconnects", client.stats.reconnects);
});
client.on("close", ({ reconnecting }) => show("connection", reconnecting ? "reconnecting…" : "closed"));
room.on("error", (error) => show("connection", `left the room: ${error.code}`));

let bytesBefore = client.stats.bytesReceived;
setInterval(() => {
  const bytes = client.stats.bytesReceived;
  show("bandwidth", `${bytes - bytesBefore} B/s`);
  bytesBefore = bytes;
  client.ping().then(
    (ms) => show("latency", `${ms.toFixed(1)} ms`),
    () => show("latency", "–"),
  );
}, 1000);
