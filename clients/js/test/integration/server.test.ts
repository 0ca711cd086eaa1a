// The client against a real Kasagi server. tests/js/test_js_client.py starts one (with
// writable_paths "/players/$self" and "/board/*") and passes its URL in KASAGI_URL.
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { WebSocket } from "ws";
import { connect, type ConnectOptions, type KasagiClient } from "../../src/client.js";
import type { Message } from "../../src/protocol.js";
import { until } from "../until.js";

const url = process.env["KASAGI_URL"];
if (url === undefined) throw new Error("KASAGI_URL is not set: run this through tests/js/test_js_client.py");

const clients: KasagiClient[] = [];
after(() => Promise.all(clients.map((client) => client.close())));

async function client(options: ConnectOptions = {}): Promise<KasagiClient> {
  const made = await connect(url as string, { WebSocket, ...options });
  clients.push(made);
  return made;
}

test("two clients, one per encoding, join, update and converge", async () => {
  const ann = await client({ encoding: "msgpack" });
  const bob = await client({ encoding: "json" });
  assert.equal(ann.encoding, "msgpack");
  assert.equal(bob.encoding, "json");
  const a = await ann.join("converge", { playerName: "Ann" });
  const joined: string[] = [];
  a.on("playerJoined", (event) => joined.push(event.playerId));
  const b = await bob.join("converge", { playerName: "Bob" });
  assert.deepEqual(b.players[a.playerId as string], { playerName: "Ann" });

  const version = await a.update({ x: 3, y: 4.5, pos: { z: -1 } });
  assert.ok(version > (b.version as number) - 1);
  await until(() => (b.version as number) >= version && (a.version as number) >= version);
  assert.deepEqual(b.players[a.playerId as string], { playerName: "Ann", x: 3, y: 4.5, pos: { z: -1 } });
  assert.deepEqual(b.state, a.state);
  assert.deepEqual(joined, [b.playerId]);

  const left: unknown[] = [];
  a.on("playerLeft", (event) => left.push(event));
  await b.leave();
  await until(() => left.length === 1 && a.players[b.playerId as string] === undefined);
  assert.deepEqual(left, [{ playerId: b.playerId, reason: "left" }]);
  assert.equal(bob.rooms.size, 0);
  assert.ok((await ann.ping()) >= 0);
});

test("a write based on an old version of a shared field is refused with CONFLICT", async () => {
  const ann = await client();
  const bob = await client();
  const a = await ann.join("conflict");
  const b = await bob.join("conflict");
  const seen = await a.update({ mark: "X" }, { path: "/board/c3" });
  await b.update({ mark: "O" }, { path: "/board/c3" });
  await assert.rejects(a.update({ mark: "Y" }, { path: "/board/c3", version: seen }), { code: "CONFLICT" });
  await assert.rejects(a.update({ x: 1 }, { path: `/players/${b.playerId}` }), { code: "FORBIDDEN" });
  await until(() => a.version === b.version && (b.version as number) >= seen + 1);
  assert.deepEqual(a.state["board"], { c3: { mark: "O" } });
});

test("a dropped connection resumes the same player with the missed deltas", async () => {
  // Ann's connections go through this class: `offline` makes her reconnections fail, the
  // sockets are kept so that the test can cut one.
  let offline = false;
  const sockets: WebSocket[] = [];
  class AnnsWebSocket extends WebSocket {
    constructor(address: string, protocols: string[]) {
      super(offline ? "ws://127.0.0.1:1/sync" : address, protocols); // port 1: refused
      sockets.push(this);
    }
  }
  const ann = await client({ WebSocket: AnnsWebSocket, reconnect: { initialDelay: 20, maxDelay: 100 } });
  const bob = await client();
  const a = await ann.join("resume", { playerName: "Ann" });
  const b = await bob.join("resume", { playerName: "Bob" });
  const playerId = a.playerId;
  const bobsEvents: string[] = [];
  b.on("playerJoined", () => bobsEvents.push("joined"));
  b.on("playerLeft", () => bobsEvents.push("left"));

  offline = true;
  sockets[0]?.terminate(); // the TCP connection ends without a close handshake
  await until(() => !ann.connected);
  let version = 0;
  for (let x = 1; x <= 3; x += 1) version = await b.update({ x });
  await until(() => sockets.length >= 3); // at least two failed attempts

  const afterReconnect: Message[] = [];
  ann.on("message", (msg) => afterReconnect.push(msg));
  offline = false;
  await until(() => a.synced && a.version === b.version && (b.version as number) >= version, 5000);
  assert.equal(ann.stats.reconnects, 1);
  assert.equal(a.playerId, playerId);
  assert.deepEqual(a.players[b.playerId as string], { playerName: "Bob", x: 3 });
  assert.deepEqual(a.state, b.state);
  // lastVersion at work: the missed deltas and an ACK, no FULL_STATE.
  const types = afterReconnect.map((msg) => msg.type);
  assert.ok(!types.includes("FULL_STATE"), types.join(" "));
  assert.ok(types.includes("DELTA_UPDATE") && types.includes("ACK"), types.join(" "));
  assert.deepEqual(bobsEvents, []); // a resume is no leave and join
  assert.equal(a.resyncs, 0);
});
