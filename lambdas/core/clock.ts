/** The one clock every use case reads (injected, so time-budget logic is testable without fake timers). */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock from a `() => number` (the older `now` option of the factories). */
export function clockOf(now?: () => number): Clock {
  return now ? { now } : systemClock;
}
