// JSON Merge Patch (RFC 7386): applying a patch to a document, and the patch between two
// documents. Sans-I/O, shared by the room mirror and its tests.
import type { Doc, Patch, Value } from "./protocol.js";

/** Returns true for a map of a document (not null, not an array). */
export function isDoc(value: unknown): value is Doc {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Returns a deep copy of a document value. */
export function clone<T extends Value>(value: T): T {
  if (Array.isArray(value)) return value.map(clone) as T;
  if (!isDoc(value)) return value;
  const copy: Doc = {};
  for (const [key, member] of Object.entries(value)) setMember(copy, key, clone(member));
  return copy as T;
}

// Defines an own property, so that a key such as "__proto__" in a received patch is plain
// data and never reaches an object's prototype.
function setMember(target: Doc, key: string, value: Value): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

/**
 * Applies `patch` to `target` (RFC 7386 section 2) and returns the result.
 *
 * When both are maps, `target` is modified in place and returned; otherwise the result is a
 * new value (so always use the return value). Nothing in the result aliases `patch`.
 */
export function applyMergePatch(target: Value | undefined, patch: Value): Value {
  if (!isDoc(patch)) return clone(patch);
  const result: Doc = isDoc(target) ? target : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete result[key];
    } else {
      const current = Object.hasOwn(result, key) ? result[key] : undefined;
      setMember(result, key, isDoc(value) ? applyMergePatch(current, value) : clone(value));
    }
  }
  return result;
}

/**
 * Returns the merge patch that turns `source` into `target` (`{}` when they are equal):
 * removed keys as null, changed leaves and arrays whole, changed maps recursively.
 */
export function mergePatchDiff(source: Doc, target: Doc): Patch {
  const patch: Patch = {};
  for (const key of Object.keys(source)) {
    if (!Object.hasOwn(target, key)) setMember(patch, key, null);
  }
  for (const [key, value] of Object.entries(target)) {
    const old = Object.hasOwn(source, key) ? source[key] : undefined;
    if (isDoc(old) && isDoc(value)) {
      const sub = mergePatchDiff(old, value);
      if (Object.keys(sub).length > 0) setMember(patch, key, sub);
    } else if (old === undefined || !sameValue(old, value)) {
      setMember(patch, key, clone(value));
    }
  }
  return patch;
}

function sameValue(a: Value, b: Value): boolean {
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => sameValue(item, b[i] as Value));
  }
  if (isDoc(a) && isDoc(b)) {
    const keys = Object.keys(a);
    return (
      keys.length === Object.keys(b).length &&
      keys.every((key) => Object.hasOwn(b, key) && sameValue(a[key] as Value, b[key] as Value))
    );
  }
  return a === b;
}
