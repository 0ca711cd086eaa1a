// When to try again after the connection is lost.

export interface BackoffOptions {
  /** Milliseconds before the first reconnection attempt. */
  initialDelay: number;
  /** The longest wait between two attempts, in milliseconds. */
  maxDelay: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = { initialDelay: 100, maxDelay: 5000 };

/**
 * Returns the milliseconds to wait before reconnection attempt `attempt` (0 for the first):
 * initialDelay doubled after every failed attempt, at most maxDelay, times a random factor
 * in [0.5, 1) so that clients dropped together do not all come back at the same instant.
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random = Math.random): number {
  const ceiling = Math.min(options.maxDelay, options.initialDelay * 2 ** attempt);
  return ceiling * (0.5 + random() / 2);
}
