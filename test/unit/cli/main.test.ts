// `kwc`'s exit codes for what is refused before anything runs: a flag the verb does not take, and
// an invalid environment (parsed by the same schemas as the Lambdas'). The controls show that the
// same environment without the refused flag goes on to run (and fails for want of a fleet file).
import { describe, expect, it } from "vitest";
import { EXIT } from "../../../cli/args.ts";
import { main } from "../../../cli/main.ts";

async function kwc(argv: string[], env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (t) => out.push(t), err: (t) => err.push(t), env });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

const FLEET = { KWC_FLEET_CONFIG: "file:/nonexistent/kwc-fleet.json" };

describe("kwc main", () => {
  it("refuses a flag the verb does not take with exit 2, before reading any fleet", async () => {
    const dropped = await kwc(["clean", "--node", "n1", "--event", "dialog"], FLEET);
    expect(dropped).toMatchObject({
      code: EXIT.usage,
      err: expect.stringMatching(/--event needs --presentity/),
    });
    const fleetWide = await kwc(["reconcile", "--presentity", "sip:a@x"], FLEET);
    expect(fleetWide).toMatchObject({
      code: EXIT.usage,
      err: expect.stringMatching(/reconcile does not take --presentity/),
    });
    // control: the same line without the refused flag runs, and fails on the missing fleet file
    const control = await kwc(["clean", "--node", "n1"], FLEET);
    expect(control).toMatchObject({ code: EXIT.error, err: expect.stringMatching(/kwc-fleet\.json/) });
  });

  it("refuses an invalid environment with exit 2, naming the variable", async () => {
    const bad = await kwc(["reconcile"], { ...FLEET, KWC_FOLLOW_UP_DELAY_SECONDS: "soon" });
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.err).toMatch(/kwc: invalid environment: KWC_FOLLOW_UP_DELAY_SECONDS must be a whole number/);
  });

  it("prints one verb's help for `kwc VERB --help`", async () => {
    const help = await kwc(["nodes", "check", "--help"]);
    expect(help.code).toBe(EXIT.ok);
    expect(help.out).toMatch(/kwc nodes check \[--node N\]/);
    expect(help.out).not.toMatch(/--dry-run/);
  });
});
