// A joined room as the application sees it: the mirrored state and its events, update() and
// leave(). The client routes the room's messages here; the room keeps its mirror current and
// asks for a RESYNC when a delta cannot apply.
import { Emitter } from "./emitter.js";
import type { KasagiError } from "./errors.js";
import { isDoc } from "./mergePatch.js";
import { RoomMirror } from "./mirror.js";
import type { Doc, Message, Patch, Value } from "./protocol.js";

export interface ChangeEvent {
  /** The merge patch just applied to `room.state` (after a FULL_STATE: the difference it made). */
  patch: Patch;
  /** The room version the state is at now. */
  version: number;
  /** True when the change comes from a FULL_STATE (the join, a resync, a resume without replay). */
  full: boolean;
}

/** PLAYER_JOINED: the new player's id and the attributes it joined with. */
export type PlayerJoinedEvent = { playerId: string } & { [attribute: string]: Value };

/** PLAYER_LEFT: reason `left` (it left) or `timeout` (its grace period after a disconnect ended). */
export interface PlayerLeftEvent {
  playerId: string;
  reason: string;
}

export interface RoomEvents {
  change: ChangeEvent;
  playerJoined: PlayerJoinedEvent;
  playerLeft: PlayerLeftEvent;
  /** An ERROR about this room that answers no pending request, or a failed resume (the room is gone). */
  error: KasagiError;
}

export interface UpdateOptions {
  /** Where the patch applies, as a JSON Pointer (default: this player's own entry); the
   * server's `writable_paths` must allow it. */
  path?: string;
  /** Optimistic check: the update is refused with CONFLICT if a field it writes was changed by
   * someone else after this room version. */
  version?: number;
}

/** @internal What a room needs from its client. */
export interface RoomChannel {
  /** Sends a message with a new requestId; resolves with its ACK (or FULL_STATE). */
  request(msg: Message): Promise<Message>;
  /** Sends a message now if connected; drops it otherwise. */
  send(msg: Message): void;
  /** The room was left: route nothing more to it. */
  forget(room: Room): void;
}

export class Room extends Emitter<RoomEvents> {
  readonly #mirror = new RoomMirror();
  readonly #channel: RoomChannel;
  // The state is not known current: a RESYNC was sent, or the connection was lost and the
  // resume has not completed. Deltas that do not apply meanwhile ask for nothing more.
  #resyncPending = false;
  #resyncs = 0;

  /** @internal Rooms are made by `client.join()`. */
  constructor(
    readonly id: string,
    readonly attrs: Doc,
    channel: RoomChannel,
  ) {
    super();
    this.#channel = channel;
  }

  /** The room document, kept current by the server's deltas. Read it; change it with update(). */
  get state(): Readonly<Doc> {
    return this.#mirror.state;
  }

  /** The room version `state` is at. */
  get version(): number | undefined {
    return this.#mirror.version;
  }

  get epoch(): string | undefined {
    return this.#mirror.epoch;
  }

  /** This client's player id in the room. */
  get playerId(): string | undefined {
    return this.#mirror.playerId;
  }

  /** The secret that resumes this player after a disconnect (join's `sessionToken` option). */
  get sessionToken(): string | undefined {
    return this.#mirror.sessionToken;
  }

  /** The room's players: playerId to that player's map. */
  get players(): Readonly<Record<string, Doc>> {
    const players = this.#mirror.state["players"];
    return isDoc(players) ? (players as Record<string, Doc>) : {};
  }

  /** This client's own player entry. */
  get me(): Doc | undefined {
    const id = this.#mirror.playerId;
    return id === undefined ? undefined : this.players[id];
  }

  /** RESYNCs sent because a delta could not apply (a gap, or a new epoch). */
  get resyncs(): number {
    return this.#resyncs;
  }

  /** True when `state` is known current: no resync or resume is under way. */
  get synced(): boolean {
    return this.#mirror.version !== undefined && !this.#resyncPending;
  }

  /**
   * Sends a merge patch for this player's entry (or for `options.path`) and resolves with the
   * room version that contains it, once the server acknowledges it. The change itself arrives
   * as a `change` event, like everyone else's.
   *
   * Rejects with a KasagiError: CONFLICT, FORBIDDEN, ... from the server, or DISCONNECTED,
   * TIMEOUT, CLOSED. While the client reconnects, the update waits for the connection.
   */
  async update(patch: Patch, options: UpdateOptions = {}): Promise<number> {
    const msg: Message = { type: "STATE_UPDATE", roomId: this.id, payload: patch };
    if (options.path !== undefined) msg.path = options.path;
    if (options.version !== undefined) msg.version = options.version;
    const ack = await this.#channel.request(msg);
    return ack.version ?? this.#mirror.version ?? 0;
  }

  /** Leaves the room (the others get PLAYER_LEFT) and waits for the server's ACK. */
  async leave(): Promise<void> {
    try {
      await this.#channel.request({ type: "LEAVE_ROOM", roomId: this.id });
    } finally {
      this.#channel.forget(this);
    }
  }

  /** @internal Applies a message of this room and emits its event. */
  receive(msg: Message): void {
    switch (msg.type) {
      case "FULL_STATE": {
        const patch = this.#mirror.applyFullState(msg);
        this.#resyncPending = false;
        this.#changed(patch, true);
        break;
      }
      case "DELTA_UPDATE": {
        const patch = this.#mirror.applyDelta(msg);
        if (patch !== null) this.#changed(patch, false);
        // Before the first FULL_STATE there is nothing to resync.
        else if (!this.#resyncPending && this.#mirror.version !== undefined) this.#resync();
        break;
      }
      case "PLAYER_JOINED":
        this.emit("playerJoined", (msg.payload ?? {}) as PlayerJoinedEvent);
        break;
      case "PLAYER_LEFT":
        this.emit("playerLeft", (msg.payload ?? {}) as unknown as PlayerLeftEvent);
        break;
    }
  }

  /** @internal The connection was lost: the state is not current until resumed. */
  disconnected(): void {
    this.#resyncPending = true;
  }

  /** @internal The JOIN_ROOM that takes this player back after a reconnection. */
  resumeMessage(): Message {
    const payload: Doc = { ...this.attrs };
    const msg: Message = { type: "JOIN_ROOM", roomId: this.id, payload };
    if (this.#mirror.sessionToken !== undefined) payload["sessionToken"] = this.#mirror.sessionToken;
    if (this.#mirror.version !== undefined) payload["lastVersion"] = this.#mirror.version;
    if (this.#mirror.epoch !== undefined) msg.epoch = this.#mirror.epoch;
    return msg;
  }

  /** @internal The resume is answered: the missed deltas (then an ACK at `version`) or a FULL_STATE. */
  resumed(version: number | undefined): void {
    this.#resyncPending = false;
    if (version !== this.#mirror.version) this.#resync(); // a replayed delta did not apply
  }

  /** @internal */
  reportError(error: KasagiError): void {
    this.emit("error", error);
  }

  #resync(): void {
    this.#resyncPending = true;
    this.#resyncs += 1;
    this.#channel.send({ type: "RESYNC", roomId: this.id });
  }

  #changed(patch: Patch, full: boolean): void {
    this.emit("change", { patch, version: this.#mirror.version ?? 0, full });
  }
}
