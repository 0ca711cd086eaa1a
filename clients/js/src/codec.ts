// The two wire encodings: MessagePack (binary frames) and JSON (text frames), each negotiated
// as a WebSocket subprotocol.
import { decode, encode } from "@msgpack/msgpack";
import type { Message } from "./protocol.js";

export type Encoding = "msgpack" | "json";

export const SUBPROTOCOLS: Readonly<Record<Encoding, string>> = {
  msgpack: "kasagi.v1.msgpack",
  json: "kasagi.v1.json",
};

/** Returns the subprotocols to offer: the preferred encoding first, the other as fallback. */
export function offeredSubprotocols(preferred: Encoding): string[] {
  return preferred === "msgpack"
    ? [SUBPROTOCOLS.msgpack, SUBPROTOCOLS.json]
    : [SUBPROTOCOLS.json, SUBPROTOCOLS.msgpack];
}

/** Returns the encoding the server selected ("" — none selected — means JSON). */
export function encodingOf(subprotocol: string): Encoding {
  return subprotocol === SUBPROTOCOLS.msgpack ? "msgpack" : "json";
}

/** Encodes a message; keys whose value is undefined are left out. */
export function encodeMessage(encoding: Encoding, msg: Message): string | Uint8Array {
  return encoding === "msgpack" ? encode(msg, { ignoreUndefined: true }) : JSON.stringify(msg);
}

/**
 * Decodes one received frame (a string, or an ArrayBuffer / view for binary frames).
 * Throws when it is not a map with a string `type`.
 */
export function decodeMessage(encoding: Encoding, data: unknown): Message {
  const msg =
    encoding === "msgpack"
      ? decode(asBytes(data))
      : JSON.parse(typeof data === "string" ? data : textOf(data));
  if (typeof msg !== "object" || msg === null || Array.isArray(msg) || typeof msg.type !== "string") {
    throw new TypeError("frame is not a protocol message");
  }
  return msg as Message;
}

/** Returns the size of a received frame in bytes (UTF-8 for text frames). */
export function frameSize(data: unknown): number {
  if (typeof data === "string") return utf8.encode(data).length;
  return asBytes(data).byteLength;
}

const utf8 = new TextEncoder();

function asBytes(data: unknown): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError("expected a binary frame");
}

function textOf(data: unknown): string {
  return new TextDecoder().decode(asBytes(data));
}
