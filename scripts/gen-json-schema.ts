// Writes docs/event-contract.schema.json from the zod contract (the single source of truth),
// so producers other than our cfg can validate what they POST. `npm run schema`.
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { eventContractJsonSchema } from "#core/json-schema.ts";

const target = fileURLToPath(new URL("../docs/event-contract.schema.json", import.meta.url));
writeFileSync(target, `${JSON.stringify(eventContractJsonSchema(), null, 2)}\n`);
console.log(`wrote ${target}`);
