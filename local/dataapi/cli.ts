// `tsx local/dataapi/cli.ts [--port N] [--config file.json] [--verbose]`: runs the local Data API
// server until SIGINT/SIGTERM and prints its endpoint and target ARNs.
import { parseArgs } from "node:util";
import { loadDataApiConfig } from "./config.ts";
import { startDataApiServer } from "./server.ts";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    host: { type: "string" },
    config: { type: "string" },
    verbose: { type: "boolean", default: false },
  },
});
const env = { ...process.env };
if (values.config) env.KWC_DATAAPI_CONFIG = values.config;
if (values.port) env.KWC_DATAAPI_PORT = values.port;
const options = loadDataApiConfig(env);
if (values.host) options.host = values.host;
if (values.verbose) options.log = (line) => console.log(line);

const server = await startDataApiServer(options);
console.log(`Data API listening on ${server.endpoint}`);
for (const t of options.targets) console.log(`  ${t.resourceArn} -> ${t.engine} ${t.host}:${t.port}`);
console.log(`  export AWS_ENDPOINT_URL_RDS_DATA=${server.endpoint}`);
const stop = () => void server.close().then(() => process.exit(0));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
