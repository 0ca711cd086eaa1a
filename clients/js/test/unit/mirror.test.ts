import assert from "node:assert/strict";
import { test } from "node:test";
import { RoomMirror } from "../../src/mirror.js";
import type { Message } from "../../src/protocol.js";

const fullState = (version: number, state: object, epoch = "e1"): Message => ({
  type: "FULL_STATE",
  roomId: "r",
  payload: { state: state as never, playerId: "p1", sessionToken: "t1" },
  version,
  tick: 3,
  epoch,
});

const delta = (baseVersion: number, version: number, payload: object, epoch = "e1"): Message => ({
  type: "DELTA_UPDATE",
  roomId: "r",
  payload: payload as never,
  baseVersion,
  version,
  tick: 4,
  epoch,
});

test("a FULL_STATE sets the state, session and version, and returns what changed", () => {
  const mirror = new RoomMirror();
  const patch = mirror.applyFullState(fullState(5, { players: { p1: { x: 1 } } }));
  assert.deepEqual(patch, { players: { p1: { x: 1 } } });
  assert.equal(mirror.version, 5);
  assert.equal(mirror.epoch, "e1");
  assert.equal(mirror.playerId, "p1");
  assert.equal(mirror.sessionToken, "t1");
  const again = mirror.applyFullState(fullState(9, { players: { p1: { x: 2 }, p2: {} } }));
  assert.deepEqual(again, { players: { p1: { x: 2 }, p2: {} } });
  assert.equal(mirror.version, 9);
});

test("deltas apply in version order", () => {
  const mirror = new RoomMirror();
  mirror.applyFullState(fullState(1, { players: { p1: { x: 1 } } }));
  assert.deepEqual(mirror.applyDelta(delta(1, 2, { players: { p1: { x: 2 }, p2: { y: 1 } } })), {
    players: { p1: { x: 2 }, p2: { y: 1 } },
  });
  assert.notEqual(mirror.applyDelta(delta(2, 4, { players: { p2: null } })), null);
  assert.deepEqual(mirror.state, { players: { p1: { x: 2 } } });
  assert.equal(mirror.version, 4);
});

test("a delta that skips a version, repeats one or comes from another epoch is refused", () => {
  const mirror = new RoomMirror();
  assert.equal(mirror.checkDelta(delta(0, 1, {})), "no-state");
  assert.equal(mirror.applyDelta(delta(0, 1, { a: 1 })), null);
  mirror.applyFullState(fullState(3, { players: {} }));
  assert.equal(mirror.checkDelta(delta(4, 5, {})), "gap");
  assert.equal(mirror.checkDelta(delta(2, 3, {})), "gap");
  assert.equal(mirror.checkDelta(delta(3, 4, {}, "e2")), "epoch");
  assert.equal(mirror.applyDelta(delta(4, 5, { a: 1 })), null);
  assert.deepEqual(mirror.state, { players: {} });
  assert.equal(mirror.version, 3);
  assert.equal(mirror.checkDelta(delta(3, 4, {})), null);
});
