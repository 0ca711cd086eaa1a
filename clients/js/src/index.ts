// @kasagi/client: the browser and Node.js client of Kasagi. See docs/js-client.md.
export { connect, KasagiClient } from "./client.js";
export type {
  ClientEvents,
  ClientStats,
  CloseEvent,
  ConnectOptions,
  JoinOptions,
  OpenEvent,
  WebSocketConstructor,
} from "./client.js";
export { Room } from "./room.js";
export type { ChangeEvent, PlayerJoinedEvent, PlayerLeftEvent, RoomEvents, UpdateOptions } from "./room.js";
export { KasagiError } from "./errors.js";
export { applyMergePatch, mergePatchDiff } from "./mergePatch.js";
export { RoomMirror, type Rejection } from "./mirror.js";
export { backoffDelay, type BackoffOptions } from "./backoff.js";
export type { Encoding } from "./codec.js";
export type { Doc, Message, Patch, Value } from "./protocol.js";
