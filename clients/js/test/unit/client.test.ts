// The client's protocol logic against a fake socket: requests and answers, resync on gaps and
// epoch changes, and reconnection with backoff and resume.
import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";
import { connect, type KasagiClient } from "../../src/client.js";
import { KasagiError } from "../../src/errors.js";
import type { Room } from "../../src/room.js";
import { FakeSocket } from "../fakeSocket.js";
import { until } from "../until.js";

const options = { WebSocket: FakeSocket, reconnect: { initialDelay: 1, maxDelay: 8 }, requestTimeout: 500 };
let clients: KasagiClient[] = [];

beforeEach(() => FakeSocket.reset());
afterEach(async () => {
  await Promise.all(clients.map((client) => client.close()));
  clients = [];
});

async function connected(extra: object = {}): Promise<KasagiClient> {
  const client = await connect("ws://kasagi.test/sync", { ...options, ...extra });
  clients.push(client);
  return client;
}

// Joins room "r" and answers as the server: player p1 at version 2 of epoch e1.
async function joined(client: KasagiClient): Promise<Room> {
  const joining = client.join("r", { color: "red" });
  const socket = FakeSocket.last;
  const join = socket.lastSent("JOIN_ROOM");
  assert.deepEqual(join.payload, { color: "red" });
  socket.deliver({
    type: "FULL_STATE",
    roomId: "r",
    payload: {
      state: { players: { p0: { x: 0 }, p1: { color: "red" } } },
      playerId: "p1",
      sessionToken: "t1",
    },
    version: 2,
    tick: 1,
    epoch: "e1",
  });
  return joining;
}

function delta(baseVersion: number, version: number, payload: object, epoch = "e1") {
  return { type: "DELTA_UPDATE", roomId: "r", payload: payload as never, baseVersion, version, epoch };
}

test("connect offers MessagePack with JSON as the fallback and uses what the server selected", async () => {
  const client = await connected();
  assert.deepEqual(FakeSocket.last.protocols, ["kasagi.v1.msgpack", "kasagi.v1.json"]);
  assert.equal(client.encoding, "json");
});

test("join resolves with the mirrored state; update resolves with the ACK's version", async () => {
  const client = await connected();
  const room = await joined(client);
  assert.equal(room.playerId, "p1");
  assert.deepEqual(room.me, { color: "red" });
  assert.ok(room.synced);

  const changes: unknown[] = [];
  room.on("change", (change) => changes.push(change));
  const updating = room.update({ x: 3 });
  const sent = FakeSocket.last.lastSent("STATE_UPDATE");
  assert.deepEqual(sent.payload, { x: 3 });
  FakeSocket.last.deliver({
    type: "ACK",
    roomId: "r",
    payload: {},
    version: 3,
    requestId: sent.requestId as number,
  });
  assert.equal(await updating, 3);
  FakeSocket.last.deliver(delta(2, 3, { players: { p1: { x: 3 } } }));
  assert.deepEqual(room.me, { color: "red", x: 3 });
  assert.deepEqual(changes, [{ patch: { players: { p1: { x: 3 } } }, version: 3, full: false }]);
});

test("an ERROR rejects the update with its code", async () => {
  const client = await connected();
  const room = await joined(client);
  const updating = room.update({ x: 1 }, { path: "/board/a", version: 2 });
  const sent = FakeSocket.last.lastSent("STATE_UPDATE");
  assert.equal(sent.path, "/board/a");
  assert.equal(sent.version, 2);
  FakeSocket.last.deliver({
    type: "ERROR",
    roomId: "r",
    payload: { code: "CONFLICT", message: "changed since version 2" },
    requestId: sent.requestId as number,
  });
  await assert.rejects(
    updating,
    (error: KasagiError) => error.code === "CONFLICT" && error.requestId === sent.requestId,
  );
});

test("a refused join rejects and leaves no room behind", async () => {
  const client = await connected();
  const joining = client.join("full");
  FakeSocket.last.deliver({
    type: "ERROR",
    roomId: "full",
    payload: { code: "ROOM_FULL", message: "room is full" },
    requestId: FakeSocket.last.lastSent("JOIN_ROOM").requestId as number,
  });
  await assert.rejects(joining, { code: "ROOM_FULL" });
  assert.equal(client.rooms.size, 0);
});

test("a gap in the versions sends RESYNC, ignores deltas until the FULL_STATE, then applies", async () => {
  const client = await connected();
  const room = await joined(client);
  const socket = FakeSocket.last;
  socket.deliver(delta(3, 4, { players: { p0: { x: 9 } } })); // version 3 was missed
  assert.equal(socket.lastSent("RESYNC").roomId, "r");
  assert.equal(room.synced, false);
  socket.deliver(delta(4, 5, { players: { p0: { x: 10 } } }));
  assert.equal(socket.sent.filter((m) => m.type === "RESYNC").length, 1);
  assert.equal(room.version, 2);

  const changes: { full: boolean; patch: object }[] = [];
  room.on("change", (change) => changes.push(change));
  socket.deliver({
    type: "FULL_STATE",
    roomId: "r",
    payload: {
      state: { players: { p0: { x: 10 }, p1: { color: "red" } } },
      playerId: "p1",
      sessionToken: "t1",
    },
    version: 5,
    epoch: "e1",
  });
  assert.deepEqual(changes, [{ patch: { players: { p0: { x: 10 } } }, version: 5, full: true }]);
  assert.ok(room.synced);
  socket.deliver(delta(5, 6, { players: { p0: { x: 11 } } }));
  assert.equal(room.version, 6);
  assert.equal(room.resyncs, 1);
});

test("a new epoch sends RESYNC", async () => {
  const client = await connected();
  const room = await joined(client);
  FakeSocket.last.deliver(delta(2, 3, { players: { p0: { x: 1 } } }, "e2"));
  assert.equal(FakeSocket.last.lastSent("RESYNC").roomId, "r");
  assert.equal(room.version, 2);
});

test("after a dropped connection it reconnects and resumes with sessionToken, lastVersion and epoch", async () => {
  const client = await connected();
  const room = await joined(client);
  const closes: unknown[] = [];
  client.on("close", (event) => closes.push(event));
  const inFlight = room.update({ x: 1 });
  const first = FakeSocket.last;
  first.drop();
  await assert.rejects(inFlight, { code: "DISCONNECTED" });
  assert.deepEqual(closes, [{ code: 1006, reason: "", reconnecting: true }]);
  assert.equal(room.synced, false);

  FakeSocket.failNext = 2; // the server is still unreachable for two attempts
  const queued = room.update({ x: 2 }); // made while disconnected: sent once reconnected
  await until(() => FakeSocket.opened.length === 4 && FakeSocket.last.protocol !== "");
  const socket = FakeSocket.last;
  const resume = socket.sent[0]!;
  assert.deepEqual(resume, {
    type: "JOIN_ROOM",
    roomId: "r",
    payload: { color: "red", sessionToken: "t1", lastVersion: 2 },
    epoch: "e1",
    requestId: resume.requestId,
  });
  assert.deepEqual(socket.sent[1]?.payload, { x: 2 }); // after the resume, not before
  assert.equal(client.stats.reconnects, 1);

  // The server replays the missed deltas, then ACKs the resume.
  socket.deliver(delta(2, 3, { players: { p0: { x: 5 } } }));
  socket.deliver({
    type: "ACK",
    roomId: "r",
    payload: {},
    version: 3,
    requestId: resume.requestId as number,
  });
  socket.deliver({
    type: "ACK",
    roomId: "r",
    payload: {},
    version: 4,
    requestId: socket.sent[1]?.requestId as number,
  });
  assert.equal(await queued, 4);
  assert.ok(room.synced);
  assert.equal(room.playerId, "p1");
  assert.deepEqual(room.players["p0"], { x: 5 });
  assert.equal(room.resyncs, 0);
});

test("a resume answered with a FULL_STATE adopts it", async () => {
  const client = await connected();
  const room = await joined(client);
  FakeSocket.last.drop();
  await until(() => FakeSocket.opened.length === 2 && FakeSocket.last.sent.length === 1);
  FakeSocket.last.deliver({
    type: "FULL_STATE",
    roomId: "r",
    payload: { state: { players: { p1: { color: "red" } } }, playerId: "p1", sessionToken: "t1" },
    version: 7,
    epoch: "e2",
  });
  await until(() => room.synced);
  assert.equal(room.version, 7);
  assert.equal(room.epoch, "e2");
  assert.deepEqual(Object.keys(room.players), ["p1"]);
});

test("a refused resume reports an error on the room and forgets it", async () => {
  const client = await connected();
  const room = await joined(client);
  const errors: KasagiError[] = [];
  room.on("error", (error) => errors.push(error));
  FakeSocket.last.drop();
  await until(() => FakeSocket.opened.length === 2 && FakeSocket.last.sent.length === 1);
  FakeSocket.last.deliver({
    type: "ERROR",
    roomId: "r",
    payload: { code: "ROOM_FULL", message: "room is full" },
    requestId: FakeSocket.last.sent[0]?.requestId as number,
  });
  await until(() => errors.length === 1);
  assert.equal(errors[0]?.code, "ROOM_FULL");
  assert.equal(client.rooms.size, 0);
});

test("no reconnection after a policy close (1008) or after close()", async () => {
  const client = await connected();
  const room = await joined(client);
  const closes: { reconnecting: boolean }[] = [];
  client.on("close", (event) => closes.push(event));
  FakeSocket.last.drop(1008, "rate limit exceeded");
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(FakeSocket.opened.length, 1);
  assert.deepEqual(closes, [{ code: 1008, reason: "rate limit exceeded", reconnecting: false }]);
  await assert.rejects(room.update({ x: 1 }), { code: "CLOSED" });

  const other = await connected();
  await other.close();
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(FakeSocket.opened.length, 2);
  assert.equal(other.connected, false);
});

test("an unanswered request times out", async () => {
  const client = await connected({ requestTimeout: 20 });
  await assert.rejects(client.join("silent"), (error: KasagiError) => error.code === "TIMEOUT");
  assert.equal(client.rooms.size, 0);
});

test("connect rejects when the server cannot be reached", async () => {
  FakeSocket.failNext = 1;
  await assert.rejects(connect("ws://kasagi.test/sync", options), { code: "DISCONNECTED" });
});
