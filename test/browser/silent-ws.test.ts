// The silent browser over WS: only Kamailio's WS keepalive notices it. 5 s, longer than a TCP
// reader keeps an idle connection, as any production keepalive is (docs/browsers.md).
import { browserScenarios } from "./scenarios.ts";

browserScenarios("ws", ["silent"], { keepaliveSeconds: 5, keepBusy: true });
