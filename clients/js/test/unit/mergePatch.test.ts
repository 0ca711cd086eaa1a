import assert from "node:assert/strict";
import { test } from "node:test";
import { applyMergePatch, mergePatchDiff } from "../../src/mergePatch.js";
import type { Doc, Value } from "../../src/protocol.js";

// RFC 7386, Appendix A: [target, patch, result].
const RFC_EXAMPLES: [Value, Value, Value][] = [
  [{ a: "b" }, { a: "c" }, { a: "c" }],
  [{ a: "b" }, { b: "c" }, { a: "b", b: "c" }],
  [{ a: "b" }, { a: null }, {}],
  [{ a: "b", b: "c" }, { a: null }, { b: "c" }],
  [{ a: ["b"] }, { a: "c" }, { a: "c" }],
  [{ a: "c" }, { a: ["b"] }, { a: ["b"] }],
  [{ a: { b: "c" } }, { a: { b: "d", c: null } }, { a: { b: "d" } }],
  [{ a: [{ b: "c" }] }, { a: [1] }, { a: [1] }],
  [
    ["a", "b"],
    ["c", "d"],
    ["c", "d"],
  ],
  [{ a: "b" }, ["c"], ["c"]],
  [{ a: "foo" }, null, null],
  [{ a: "foo" }, "bar", "bar"],
  [{ e: null }, { a: 1 }, { e: null, a: 1 }],
  [[1, 2], { a: "b", c: null }, { a: "b" }],
  [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
];

test("applies every example of RFC 7386", () => {
  for (const [target, patch, result] of RFC_EXAMPLES) {
    assert.deepEqual(
      applyMergePatch(structuredClone(target), patch),
      result,
      JSON.stringify([target, patch]),
    );
  }
});

test("modifies a map target in place and never aliases the patch", () => {
  const target: Doc = { players: { a: { x: 1 } } };
  const patch: Doc = { players: { a: { pos: { z: 1 } }, b: { tags: ["t"] } } };
  const result = applyMergePatch(target, patch) as Doc;
  assert.equal(result, target);
  ((result["players"] as Doc)["b"] as { tags: string[] }).tags.push("changed");
  (((result["players"] as Doc)["a"] as Doc)["pos"] as Doc)["z"] = 2;
  assert.deepEqual(patch, { players: { a: { pos: { z: 1 } }, b: { tags: ["t"] } } });
});

test("a __proto__ key is plain data, not a prototype", () => {
  const patch = JSON.parse('{"__proto__": {"polluted": true}, "a": {"__proto__": {"x": 1}}}') as Doc;
  const result = applyMergePatch({}, patch) as Doc;
  assert.equal(({} as { polluted?: boolean }).polluted, undefined);
  assert.equal(Object.getPrototypeOf(result), Object.prototype);
  assert.deepEqual(Object.keys(result), ["__proto__", "a"]);
  assert.deepEqual(Object.getOwnPropertyDescriptor(result["a"], "__proto__")?.value, { x: 1 });
  applyMergePatch(result, JSON.parse('{"__proto__": null}') as Doc);
  assert.deepEqual(Object.keys(result), ["a"]);
});

test("the diff of two documents turns one into the other", () => {
  const pairs: [Doc, Doc][] = [
    [{}, {}],
    [{ a: 1 }, {}],
    [{}, { a: { b: [1, { c: 2 }] } }],
    [
      { a: { b: 1, c: 2 }, d: [1] },
      { a: { b: 1, c: 3 }, d: [1, 2] },
    ],
    [{ a: { b: 1 } }, { a: "flat" }],
    [{ a: "flat" }, { a: { b: 1 } }],
    [{ a: [1, 2] }, { a: [1, 2] }],
  ];
  for (const [source, target] of pairs) {
    const patch = mergePatchDiff(source, target);
    assert.deepEqual(
      applyMergePatch(structuredClone(source), patch),
      target,
      JSON.stringify([source, target]),
    );
  }
  assert.deepEqual(mergePatchDiff({ a: { b: 1, c: [1] } }, { a: { b: 1, c: [1] } }), {});
  assert.deepEqual(mergePatchDiff({ a: { b: 1, c: 2 } }, { a: { b: 1 } }), { a: { c: null } });
});

test("diff and apply agree on random documents", () => {
  let seed = 42;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const leaf = (): Value => [1, 2.5, "s", true, [1, "x"], null][Math.floor(random() * 6)] as Value;
  const doc = (depth: number): Doc => {
    const out: Doc = {};
    for (const key of ["a", "b", "c", "d"]) {
      const roll = random();
      if (roll < 0.3) continue;
      const value = depth < 3 && roll < 0.6 ? doc(depth + 1) : leaf();
      if (value !== null) out[key] = value; // a map member is never null
    }
    return out;
  };
  for (let i = 0; i < 300; i += 1) {
    const source = doc(0);
    const target = doc(0);
    assert.deepEqual(applyMergePatch(structuredClone(source), mergePatchDiff(source, target)), target);
  }
});
