// What one client knows of one room: its state at a version. Sans-I/O: the Room handle feeds
// it the server's FULL_STATE and DELTA_UPDATE messages, and tests feed it directly.
import { applyMergePatch, clone, isDoc, mergePatchDiff } from "./mergePatch.js";
import type { Doc, Message, Patch } from "./protocol.js";

/**
 * Why a delta cannot apply: no FULL_STATE yet, the room's epoch changed, or its baseVersion
 * is not the mirror's version (something was missed). Each means: resync.
 */
export type Rejection = "no-state" | "epoch" | "gap";

export class RoomMirror {
  /** The room document at `version`. */
  state: Doc = {};
  /** The room version `state` is at; undefined before the first FULL_STATE. */
  version: number | undefined;
  /** Changes whenever the room's authority restarts; a new epoch means "resync". */
  epoch: string | undefined;
  tick: number | undefined;
  /** This client's player in the room, and the token that resumes it after a disconnect. */
  playerId: string | undefined;
  sessionToken: string | undefined;

  /** Replaces the state with a FULL_STATE's; returns the patch from the old state to it. */
  applyFullState(msg: Message): Patch {
    const payload = msg.payload ?? {};
    const state = isDoc(payload["state"]) ? clone(payload["state"]) : {};
    const patch = mergePatchDiff(this.state, state);
    this.state = state;
    this.version = msg.version;
    this.epoch = msg.epoch ?? this.epoch;
    this.tick = msg.tick ?? this.tick;
    if (typeof payload["playerId"] === "string") this.playerId = payload["playerId"];
    if (typeof payload["sessionToken"] === "string") this.sessionToken = payload["sessionToken"];
    return patch;
  }

  /** Returns null when a DELTA_UPDATE applies on top of this mirror, or why it does not. */
  checkDelta(msg: Message): Rejection | null {
    if (this.version === undefined) return "no-state";
    if (msg.epoch !== undefined && this.epoch !== undefined && msg.epoch !== this.epoch) {
      return "epoch";
    }
    return msg.baseVersion === this.version ? null : "gap";
  }

  /**
   * Applies a DELTA_UPDATE when checkDelta allows it; returns the applied patch, or null
   * (the mirror unchanged) when it does not.
   */
  applyDelta(msg: Message): Patch | null {
    if (this.checkDelta(msg) !== null) return null;
    const patch = msg.payload ?? {};
    this.state = applyMergePatch(this.state, patch) as Doc;
    this.version = msg.version ?? this.version;
    this.tick = msg.tick ?? this.tick;
    return patch;
  }
}
