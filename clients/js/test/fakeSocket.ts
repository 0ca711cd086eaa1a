// A WebSocket stand-in for unit tests: the test plays the server, speaking JSON.
import type { Message } from "../src/protocol.js";

export class FakeSocket {
  /** Every socket the client opened, in order. */
  static opened: FakeSocket[] = [];
  /** How many of the next connection attempts fail (closed before opening). */
  static failNext = 0;

  protocol = "";
  binaryType = "blob";
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  /** What the client sent, decoded. */
  readonly sent: Message[] = [];
  closed = false;

  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {
    FakeSocket.opened.push(this);
    const fail = FakeSocket.failNext > 0;
    if (fail) FakeSocket.failNext -= 1;
    setTimeout(() => {
      if (fail) return this.drop(1006);
      this.protocol = "kasagi.v1.json";
      this.onopen?.();
    }, 0);
  }

  static reset(): void {
    FakeSocket.opened = [];
    FakeSocket.failNext = 0;
  }

  /** The socket opened last. */
  static get last(): FakeSocket {
    const socket = FakeSocket.opened.at(-1);
    if (socket === undefined) throw new Error("no socket opened");
    return socket;
  }

  send(data: string | Uint8Array): void {
    if (this.closed) throw new Error("send on a closed socket");
    this.sent.push(JSON.parse(data as string) as Message);
  }

  close(code = 1000, reason = ""): void {
    this.drop(code, reason);
  }

  /** The server sends a message. */
  deliver(msg: Message): void {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }

  /** The connection ends, as a network failure (1006) or a server's close would end it. */
  drop(code = 1006, reason = ""): void {
    if (this.closed) return;
    this.closed = true;
    this.onerror?.();
    this.onclose?.({ code, reason });
  }

  /** The last message sent of a type. */
  lastSent(type: string): Message {
    const msg = this.sent.filter((m) => m.type === type).at(-1);
    if (msg === undefined) throw new Error(`no ${type} sent; sent: ${JSON.stringify(this.sent)}`);
    return msg;
  }
}
