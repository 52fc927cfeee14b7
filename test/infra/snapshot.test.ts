import { describe, expect, it } from "vitest";
import { buildStack } from "./synth.ts";

/** Asset hashes change with every handler edit; the snapshot is about the infrastructure. */
function maskAssetHashes(template: unknown): unknown {
  return JSON.parse(JSON.stringify(template).replace(/[0-9a-f]{64}(\.zip|\.json)?/g, "[ASSET-HASH]$1"));
}

describe("default stack snapshot", () => {
  it("matches the reviewed template (asset hashes masked)", () => {
    const { template } = buildStack();
    const masked = maskAssetHashes(template.toJSON());
    expect(JSON.stringify(masked)).not.toMatch(/[0-9a-f]{64}/);
    expect(masked).toMatchSnapshot();
  });
});
