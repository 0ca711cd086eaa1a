// The connection to one Kasagi server: opens the WebSocket, routes messages to the rooms,
// matches answers to requests, and after a lost connection reconnects with backoff and
// resumes every room with its session token and last version.
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
import {
  decodeMessage,
  encodeMessage,
  encodingOf,
  frameSize,
  offeredSubprotocols,
  type Encoding,
} from "./codec.js";
import { Emitter } from "./emitter.js";
import { KasagiError } from "./errors.js";
import type { Doc, Message } from "./protocol.js";
import { Room, type RoomChannel } from "./room.js";

/** A WHATWG WebSocket class: the browser's `WebSocket`, or `WebSocket` of the `ws` package. */
export type WebSocketConstructor = new (url: string, protocols: string[]) => unknown;

export interface ConnectOptions {
  /** The preferred wire encoding; the other one is offered as a fallback. Default "msgpack". */
  encoding?: Encoding;
  /** Reconnect after an unexpected disconnect (default true), optionally with other delays
   * (default: from 100 ms, doubling, up to 5 s). */
  reconnect?: boolean | Partial<BackoffOptions>;
  /** Milliseconds to wait for an answer, and for a connection to open. Default 10000. */
  requestTimeout?: number;
  /** The WebSocket implementation. Default: `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
}

export interface JoinOptions {
  /** Resume the player of an earlier session (e.g. saved across a page reload). */
  sessionToken?: string;
}

/** A new connection replaced a lost one; the rooms are being resumed. */
export interface OpenEvent {
  /** The encoding the server selected. */
  encoding: Encoding;
}

export interface CloseEvent {
  code: number;
  reason: string;
  /** True when the client will reconnect and resume its rooms. */
  reconnecting: boolean;
}

export interface ClientEvents {
  open: OpenEvent;
  close: CloseEvent;
  /** Every message received, after the rooms have applied it. */
  message: Message;
  /** An ERROR that answers no request and concerns no joined room. */
  error: KasagiError;
}

export interface ClientStats {
  bytesReceived: number;
  messagesReceived: number;
  reconnects: number;
}

// The part of the WebSocket API the client uses.
interface Socket {
  readonly protocol: string;
  binaryType: string;
  onopen: (() => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: (() => void) | null;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}

interface Pending {
  resolve(msg: Message): void;
  reject(error: KasagiError): void;
  timer: ReturnType<typeof setTimeout>;
  sent: boolean;
}

// Close codes that mean "this client misbehaved" (protocol error, unsupported or invalid data,
// policy such as rate limits or a slow consumer, message too big): reconnecting would only
// repeat the offence.
const NO_RECONNECT_CODES = new Set([1002, 1003, 1007, 1008, 1009, 1010]);

/**
 * Connects to a Kasagi server (`ws://host:port/sync`) and resolves once the WebSocket is open.
 * Rejects with KasagiError DISCONNECTED when it cannot be opened.
 */
export function connect(url: string, options: ConnectOptions = {}): Promise<KasagiClient> {
  return KasagiClient.connect(url, options);
}

export class KasagiClient extends Emitter<ClientEvents> {
  readonly stats: ClientStats = { bytesReceived: 0, messagesReceived: 0, reconnects: 0 };
  readonly #WebSocket: WebSocketConstructor;
  readonly #preferred: Encoding;
  readonly #backoff: BackoffOptions | null;
  readonly #requestTimeout: number;
  #socket: Socket | undefined;
  #encoding: Encoding = "json";
  #closed = false;
  #attempt = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #rooms = new Map<string, Room>();
  readonly #pending = new Map<number, Pending>(); // by requestId
  readonly #pings = new Map<number, Pending>(); // by timestamp, which PONG echoes
  readonly #joinRequests = new Map<string, number>(); // roomId -> its JOIN_ROOM's requestId
  #outbox: Message[] = []; // requests made while reconnecting
  #nextRequestId = 1;
  #lastTimestamp = 0;

  readonly #channel: RoomChannel = {
    request: (msg) => this.#request(msg),
    send: (msg) => this.#socket?.send(encodeMessage(this.#encoding, msg)),
    forget: (room) => {
      if (this.#rooms.get(room.id) === room) this.#rooms.delete(room.id);
    },
  };

  /** Use `connect()`. */
  static async connect(url: string, options: ConnectOptions = {}): Promise<KasagiClient> {
    const client = new KasagiClient(url, options);
    client.#adopt(await client.#open());
    return client;
  }

  private constructor(
    readonly url: string,
    options: ConnectOptions,
  ) {
    super();
    const WebSocket = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (WebSocket === undefined) throw new TypeError("no WebSocket implementation: pass options.WebSocket");
    this.#WebSocket = WebSocket;
    this.#preferred = options.encoding ?? "msgpack";
    const reconnect = options.reconnect ?? true;
    this.#backoff =
      reconnect === false ? null : { ...DEFAULT_BACKOFF, ...(reconnect === true ? {} : reconnect) };
    this.#requestTimeout = options.requestTimeout ?? 10_000;
  }

  /** The encoding of the current connection. */
  get encoding(): Encoding {
    return this.#encoding;
  }

  /** True while a connection is open. */
  get connected(): boolean {
    return this.#socket !== undefined;
  }

  /** The rooms joined, by id. */
  get rooms(): ReadonlyMap<string, Room> {
    return this.#rooms;
  }

  /**
   * Joins a room as a new player with these attributes (e.g. `{playerName: "Ann"}`) and
   * resolves with the room once its state has arrived.
   *
   * Rejects with a KasagiError (ROOM_FULL, UNAVAILABLE, FORBIDDEN, ... or DISCONNECTED,
   * TIMEOUT, CLOSED), or with an Error when this client is already in the room.
   */
  async join(roomId: string, attrs: Doc = {}, options: JoinOptions = {}): Promise<Room> {
    if (this.#rooms.has(roomId)) throw new Error(`already in room ${roomId}`);
    const room = new Room(roomId, attrs, this.#channel);
    this.#rooms.set(roomId, room);
    const payload: Doc = { ...attrs };
    if (options.sessionToken !== undefined) payload["sessionToken"] = options.sessionToken;
    try {
      await this.#request({ type: "JOIN_ROOM", roomId, payload });
    } catch (error) {
      this.#channel.forget(room);
      throw error;
    }
    return room;
  }

  /** Sends PING and resolves with the round-trip time in milliseconds (needs a connection). */
  async ping(): Promise<number> {
    this.#lastTimestamp = Math.max(Date.now(), this.#lastTimestamp + 1); // PONG echoes it: unique
    const timestamp = this.#lastTimestamp;
    const started = performance.now();
    const answer = this.#expect(this.#pings, timestamp, "PING");
    this.#transmit({ type: "PING", timestamp }, this.#pings, timestamp);
    await answer;
    return performance.now() - started;
  }

  /**
   * Closes the connection and stops reconnecting; requests not yet answered are rejected with
   * CLOSED. Resolves when the socket is closed.
   */
  close(code = 1000, reason = ""): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    const socket = this.#socket;
    if (socket === undefined) {
      this.#failAll(new KasagiError("CLOSED", "the client is closed"));
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      socket.onclose = (event) => {
        this.#lost(socket, event.code, event.reason);
        resolve();
      };
      socket.close(code, reason);
    });
  }

  // ---------------------------------------------------------------------------------------
  // Connection, reconnection and resume

  // Resolves with an open socket, or rejects with DISCONNECTED (also when it takes longer
  // than the request timeout).
  #open(): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = new this.#WebSocket(this.url, offeredSubprotocols(this.#preferred)) as Socket;
      socket.binaryType = "arraybuffer";
      const timer = setTimeout(() => socket.close(), this.#requestTimeout);
      socket.onopen = () => {
        clearTimeout(timer);
        resolve(socket);
      };
      socket.onclose = (event) => {
        clearTimeout(timer);
        reject(new KasagiError("DISCONNECTED", `cannot connect to ${this.url} (close code ${event.code})`));
      };
      socket.onerror = () => {}; // a close event follows
    });
  }

  #adopt(socket: Socket): void {
    this.#socket = socket;
    this.#encoding = encodingOf(socket.protocol);
    socket.onmessage = (event) => this.#receive(event.data);
    socket.onclose = (event) => this.#lost(socket, event.code, event.reason);
  }

  #lost(socket: Socket, code: number, reason: string): void {
    if (socket !== this.#socket) return;
    this.#socket = undefined;
    // What was sent may or may not have been applied: the caller must decide.
    const lost = new KasagiError("DISCONNECTED", `connection lost (close code ${code})`);
    for (const [requestId, pending] of this.#pending) {
      if (pending.sent) this.#settle(this.#pending, requestId, lost);
    }
    for (const timestamp of [...this.#pings.keys()]) this.#settle(this.#pings, timestamp, lost);
    for (const room of this.#rooms.values()) room.disconnected();
    const reconnecting = !this.#closed && this.#backoff !== null && !NO_RECONNECT_CODES.has(code);
    if (!reconnecting) {
      this.#closed = true;
      this.#failAll(new KasagiError("CLOSED", `the connection is closed (close code ${code})`));
    }
    this.emit("close", { code, reason, reconnecting });
    if (reconnecting) this.#scheduleReconnect();
  }

  #scheduleReconnect(): void {
    const delay = backoffDelay(this.#attempt++, this.#backoff ?? DEFAULT_BACKOFF);
    this.#reconnectTimer = setTimeout(() => void this.#reconnect(), delay);
  }

  async #reconnect(): Promise<void> {
    let socket: Socket;
    try {
      socket = await this.#open();
    } catch {
      if (!this.#closed) this.#scheduleReconnect();
      return;
    }
    if (this.#closed) return socket.close();
    this.#attempt = 0;
    this.stats.reconnects += 1;
    this.#adopt(socket);
    // The resumes go first, so that the requests made meanwhile find their rooms.
    for (const room of this.#rooms.values()) {
      if (room.version !== undefined) this.#resume(room);
    }
    for (const msg of this.#outbox.splice(0)) {
      const requestId = msg.requestId as number;
      if (this.#pending.has(requestId)) this.#transmit(msg, this.#pending, requestId);
    }
    this.emit("open", { encoding: this.#encoding });
  }

  // Takes the room's player back: the server answers with the missed deltas and an ACK, or
  // with a FULL_STATE.
  #resume(room: Room): void {
    this.#request(room.resumeMessage()).then(
      (answer) => room.resumed(answer.version),
      (error: KasagiError) => {
        if (error.code === "DISCONNECTED" || error.code === "CLOSED") return; // tried again later
        this.#channel.forget(room); // refused: the player is gone
        room.reportError(error);
      },
    );
  }

  // ---------------------------------------------------------------------------------------
  // Requests and answers

  // Sends a message with a new requestId; resolves with the ACK (or, for a JOIN_ROOM, the
  // FULL_STATE) that answers it.
  #request(msg: Message): Promise<Message> {
    const requestId = this.#nextRequestId++;
    const answer = this.#expect(this.#pending, requestId, msg.type);
    if (msg.type === "JOIN_ROOM" && msg.roomId !== undefined) this.#joinRequests.set(msg.roomId, requestId);
    const out = { ...msg, requestId };
    if (this.#socket !== undefined || this.#closed) this.#transmit(out, this.#pending, requestId);
    else this.#outbox.push(out);
    return answer;
  }

  #expect(table: Map<number, Pending>, key: number, what: string): Promise<Message> {
    return new Promise((resolve, reject) => {
      const timeout = this.#requestTimeout;
      const timer = setTimeout(
        () =>
          this.#settle(table, key, new KasagiError("TIMEOUT", `no answer to ${what} within ${timeout} ms`)),
        timeout,
      );
      table.set(key, { resolve, reject, timer, sent: false });
    });
  }

  #transmit(msg: Message, table: Map<number, Pending>, key: number): void {
    const pending = table.get(key);
    if (this.#socket === undefined) {
      const code = this.#closed ? "CLOSED" : "DISCONNECTED";
      this.#settle(table, key, new KasagiError(code, `not connected: ${msg.type} not sent`));
      return;
    }
    this.#socket.send(encodeMessage(this.#encoding, msg));
    if (pending !== undefined) pending.sent = true;
  }

  #settle(table: Map<number, Pending>, key: number, outcome: Message | KasagiError): void {
    const pending = table.get(key);
    if (pending === undefined) return;
    table.delete(key);
    clearTimeout(pending.timer);
    if (table === this.#pending) {
      for (const [roomId, requestId] of this.#joinRequests) {
        if (requestId === key) this.#joinRequests.delete(roomId);
      }
    }
    if (outcome instanceof KasagiError) pending.reject(outcome);
    else pending.resolve(outcome);
  }

  #failAll(error: KasagiError): void {
    this.#outbox = [];
    for (const key of [...this.#pending.keys()]) this.#settle(this.#pending, key, error);
    for (const key of [...this.#pings.keys()]) this.#settle(this.#pings, key, error);
  }

  #receive(data: unknown): void {
    this.stats.bytesReceived += frameSize(data);
    let msg: Message;
    try {
      msg = decodeMessage(this.#encoding, data);
    } catch {
      return; // not a protocol message: nothing in it can be trusted
    }
    this.stats.messagesReceived += 1;
    const room = msg.roomId === undefined ? undefined : this.#rooms.get(msg.roomId);
    room?.receive(msg);
    switch (msg.type) {
      case "FULL_STATE": {
        const requestId = room === undefined ? undefined : this.#joinRequests.get(room.id);
        if (requestId !== undefined) this.#settle(this.#pending, requestId, msg);
        break;
      }
      case "ACK":
        if (msg.requestId !== undefined) this.#settle(this.#pending, msg.requestId, msg);
        break;
      case "PONG":
        if (msg.timestamp !== undefined) this.#settle(this.#pings, msg.timestamp, msg);
        break;
      case "ERROR":
        this.#receiveError(msg, room);
        break;
    }
    this.emit("message", msg);
  }

  // An ERROR goes to the request it echoes, else to the join under way in its room, else to
  // the room, else to the client.
  #receiveError(msg: Message, room: Room | undefined): void {
    const error = KasagiError.fromMessage(msg);
    const joinRequest = room === undefined ? undefined : this.#joinRequests.get(room.id);
    const requestId =
      msg.requestId !== undefined && this.#pending.has(msg.requestId) ? msg.requestId : joinRequest;
    if (requestId !== undefined) this.#settle(this.#pending, requestId, error);
    else if (room !== undefined) room.reportError(error);
    else this.emit("error", error);
  }
}
