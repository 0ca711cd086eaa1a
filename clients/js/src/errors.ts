// The one error type of the client: a server ERROR, or a request the client had to give up.
import type { Message } from "./protocol.js";

/**
 * A refused or failed request. `code` is the server's error code (`CONFLICT`, `FORBIDDEN`,
 * `ROOM_FULL`, `NOT_IN_ROOM`, `RATE_LIMITED`, ... see docs/protocol.md) or one of the client's:
 * - `DISCONNECTED`: the connection was lost after the request was sent, so it may or may not
 *   have been applied; or the first connection could not be opened.
 * - `TIMEOUT`: no answer within the request timeout.
 * - `CLOSED`: the client was closed.
 */
export class KasagiError extends Error {
  override readonly name = "KasagiError";

  constructor(
    readonly code: string,
    message: string,
    readonly requestId?: number,
    readonly roomId?: string,
  ) {
    super(message);
  }

  /** Returns the error an ERROR message stands for. */
  static fromMessage(msg: Message): KasagiError {
    const payload = msg.payload ?? {};
    const code = typeof payload["code"] === "string" ? payload["code"] : "INTERNAL";
    const text = typeof payload["message"] === "string" ? payload["message"] : "";
    return new KasagiError(code, `${code}: ${text}`, msg.requestId, msg.roomId);
  }
}
