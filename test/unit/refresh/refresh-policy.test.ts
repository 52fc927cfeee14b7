// The refresh policy as a table: each row is one situation after the worker deleted a dead
// connection's rows of a presentity, with the verdict and its reason.
import { describe, expect, it } from "vitest";
import {
  decideRefresh,
  loopAborts,
  type PresentityRowTrace,
  type RefreshPolicyInput,
  type RefreshVerdict,
} from "#core/refresh-policy.ts";

const DEATH = 1_800_000_000;
const NOW = DEATH + 20;
const old: PresentityRowTrace = { receivedTime: DEATH - 100, expires: NOW + 500 };
const base: RefreshPolicyInput = {
  version: "5.6.3",
  deathAt: DEATH,
  now: NOW,
  presentity: [old],
  skewSeconds: 3,
  deletions: { tracedSince: DEATH - 1000, lastDeletedAt: undefined },
};
const untraced = { deletions: undefined };

const TABLE: { name: string; input: Partial<RefreshPolicyInput>; verdict: RefreshVerdict }[] = [
  {
    name: "5.6.3, no trigger, deletions traced",
    input: {},
    verdict: { refresh: false, reason: "no-trigger" },
  },
  {
    name: "no trigger seen, deletions not traced (a sibling row may have expired)",
    input: { ...untraced },
    verdict: { refresh: true, reason: "untraced-deletion" },
  },
  {
    name: "PUBLISH after the death",
    input: { presentity: [{ ...old, receivedTime: DEATH + 5 }] },
    verdict: { refresh: true, reason: "published-since-death" },
  },
  {
    name: "refresh PUBLISH within the clock skew before the death",
    input: { presentity: [old, { ...old, receivedTime: DEATH - 3 }] },
    verdict: { refresh: true, reason: "published-since-death" },
  },
  {
    name: "PUBLISH before the death (outside the skew)",
    input: { presentity: [{ ...old, receivedTime: DEATH - 4 }] },
    verdict: { refresh: false, reason: "no-trigger" },
  },
  {
    name: "a row past its expires (the clean timer NOTIFYs all before deleting it)",
    input: { presentity: [{ ...old, expires: NOW - 1 }] },
    verdict: { refresh: true, reason: "expired-since-death" },
  },
  {
    name: "a row expiring within the skew of now",
    input: { presentity: [{ ...old, expires: NOW + 3 }] },
    verdict: { refresh: true, reason: "expired-since-death" },
  },
  {
    name: "no presentity row, deletions not traced (expiry or Expires: 0 in the window)",
    input: { presentity: [], ...untraced },
    verdict: { refresh: true, reason: "presentity-absent" },
  },
  {
    name: "an expiry or Expires: 0 after the death (the trace's last deletion)",
    input: { presentity: [], deletions: { tracedSince: DEATH - 1000, lastDeletedAt: DEATH + 4 } },
    verdict: { refresh: true, reason: "deleted-since-death" },
  },
  {
    name: "a sibling row deleted after the death, the other rows untouched",
    input: { deletions: { tracedSince: DEATH - 1000, lastDeletedAt: DEATH } },
    verdict: { refresh: true, reason: "deleted-since-death" },
  },
  {
    name: "a deletion within the clock skew before the death",
    input: { deletions: { tracedSince: DEATH - 1000, lastDeletedAt: DEATH - 3 } },
    verdict: { refresh: true, reason: "deleted-since-death" },
  },
  {
    name: "a deletion before the death (outside the skew)",
    input: { presentity: [], deletions: { tracedSince: DEATH - 1000, lastDeletedAt: DEATH - 4 } },
    verdict: { refresh: false, reason: "no-trigger" },
  },
  {
    name: "the trace began after the death (installed, or pruned, since)",
    input: { deletions: { tracedSince: DEATH - 2, lastDeletedAt: undefined } },
    verdict: { refresh: true, reason: "trace-after-death" },
  },
  {
    name: "the trace began within the skew before the death",
    input: { deletions: { tracedSince: DEATH - 3, lastDeletedAt: undefined } },
    verdict: { refresh: false, reason: "no-trigger" },
  },
  {
    name: "a PUBLISH after the death is found before the trace's start is looked at",
    input: {
      presentity: [{ ...old, receivedTime: DEATH }],
      deletions: { tracedSince: NOW, lastDeletedAt: undefined },
    },
    verdict: { refresh: true, reason: "published-since-death" },
  },
  {
    name: "no presentity row, deletions traced and none",
    input: { presentity: [] },
    verdict: { refresh: false, reason: "no-trigger" },
  },
  {
    name: "presentity not read",
    input: { presentity: undefined },
    verdict: { refresh: true, reason: "presentity-unread" },
  },
  {
    name: "presentity not read, deletions not traced (what the worker does today)",
    input: { presentity: undefined, ...untraced },
    verdict: { refresh: true, reason: "untraced-deletion" },
  },
  {
    name: "no death time (notify.failed, reconciler, on-demand, kwc)",
    input: { deathAt: undefined },
    verdict: { refresh: true, reason: "no-death-time" },
  },
  {
    name: "5.7.2",
    input: { version: "5.7.2", presentity: [] },
    verdict: { refresh: false, reason: "no-trigger" },
  },
  {
    name: "5.8.5 aborts",
    input: { version: "5.8.5", presentity: [{ ...old, receivedTime: NOW }] },
    verdict: { refresh: true, reason: "published-since-death" },
  },
  {
    name: "5.8.6 continues, even with a PUBLISH after the death",
    input: { version: "5.8.6", presentity: [{ ...old, receivedTime: NOW }] },
    verdict: { refresh: false, reason: "version-continues" },
  },
  {
    name: "6.0.1 continues, with no death time",
    input: { version: "6.0.1", deathAt: undefined },
    verdict: { refresh: false, reason: "version-continues" },
  },
  {
    name: "unknown version",
    input: { version: undefined },
    verdict: { refresh: true, reason: "version-unknown" },
  },
  {
    name: "unparseable version",
    input: { version: "dev" },
    verdict: { refresh: true, reason: "version-unknown" },
  },
];

describe("decideRefresh", () => {
  it.each(TABLE)("$name", ({ input, verdict }) => {
    expect(decideRefresh({ ...base, ...input })).toEqual(verdict);
  });
});

describe("loopAborts (GH #4118)", () => {
  it.each([
    ["5.6.0", true],
    ["5.6.3", true],
    ["5.7.6", true],
    ["5.8.0", true],
    ["5.8.5", true],
    ["5.8.6", false],
    ["5.8.10", false],
    ["6.0.0", false],
    ["6.0.1", false],
    ["6.1.0", false],
    ["4.4.7", true],
    [undefined, undefined],
  ] as const)("%s → %s", (version, aborts) => {
    expect(loopAborts(version)).toBe(aborts);
  });
});
