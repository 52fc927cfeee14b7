import { z } from "zod";
import { EnvelopeDocumentSchema } from "./contract.ts";

/** JSON Schema (draft 2020-12) of the v1 envelope with its typed events. */
export function eventContractJsonSchema(): Record<string, unknown> {
  return {
    $id: "https://github.com/kamailio-watcher-cleanup/event-contract/v1",
    title: "kamailio-watcher-cleanup event envelope v1",
    ...z.toJSONSchema(EnvelopeDocumentSchema, { target: "draft-2020-12" }),
  };
}
