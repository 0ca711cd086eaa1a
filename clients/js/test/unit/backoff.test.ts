import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay } from "../../src/backoff.js";

test("the delay doubles per attempt up to the maximum, with jitter in [0.5, 1)", () => {
  const options = { initialDelay: 100, maxDelay: 1000 };
  const highest = (attempt: number) => backoffDelay(attempt, options, () => 0.999999);
  const lowest = (attempt: number) => backoffDelay(attempt, options, () => 0);
  assert.deepEqual(
    [0, 1, 2, 3, 4, 60].map((a) => Math.round(highest(a))),
    [100, 200, 400, 800, 1000, 1000],
  );
  assert.deepEqual([0, 1, 2, 3, 4, 60].map(lowest), [50, 100, 200, 400, 500, 500]);
});
