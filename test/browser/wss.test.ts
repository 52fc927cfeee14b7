// Browser scenarios over WSS, the node's certificate trusted through the browser's own NSS
// database (docs/browsers.md); the silent browser is in silent-wss.test.ts.
import { browserScenarios } from "./scenarios.ts";

browserScenarios("wss", ["reload", "close", "crash", "twoTabs"], { keepaliveSeconds: 30 });
