// The shapes of the Kasagi wire protocol (docs/protocol.md) as TypeScript types.

/**
 * A value of a room document: maps with string keys whose leaves are null, booleans, numbers,
 * strings or arrays (arrays are leaves: replaced whole, never merged).
 *
 * JavaScript has one number type: whole numbers are sent as integers, others as floats.
 */
export type Value = null | boolean | number | string | Value[] | Doc;

/** A map of a room document (the room state itself is one). */
export interface Doc {
  [key: string]: Value;
}

/** A JSON Merge Patch (RFC 7386): members merge key by key and `null` deletes a key. */
export type Patch = Doc;

/** One protocol message (an envelope); absent keys are left out, never sent as null. */
export interface Message {
  type: string;
  roomId?: string;
  payload?: Doc;
  version?: number;
  baseVersion?: number;
  tick?: number;
  epoch?: string;
  requestId?: number;
  timestamp?: number;
  /** Extension on STATE_UPDATE: where the patch applies (a JSON Pointer). */
  path?: string;
}
