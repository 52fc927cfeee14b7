// Browser scenarios over WS (docs/browsers.md); the silent browser is in silent-ws.test.ts.
import { browserScenarios } from "./scenarios.ts";

browserScenarios("ws", ["reload", "close", "crash", "twoTabs"], { keepaliveSeconds: 30 });
