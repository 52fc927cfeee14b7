import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { eventContractJsonSchema } from "#core/json-schema.ts";

describe("generated JSON Schema of the event contract", () => {
  it("is current with the zod contract (run `npm run schema` after changing it)", () => {
    const committed = JSON.parse(
      readFileSync(new URL("../../docs/event-contract.schema.json", import.meta.url), "utf8"),
    );
    expect(committed).toEqual(eventContractJsonSchema());
  });

  it("documents the four event types and the envelope bounds", () => {
    const schema = eventContractJsonSchema() as {
      properties: {
        events: { maxItems: number; items: { oneOf: { properties: { type: { const: string } } }[] } };
      };
    };
    expect(schema.properties.events.maxItems).toBe(200);
    expect(schema.properties.events.items.oneOf.map((s) => s.properties.type.const)).toEqual([
      "connection.closed",
      "notify.failed",
      "presence.changed",
      "refresh.requested",
    ]);
  });
});
