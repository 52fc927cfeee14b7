// The silent browser over WS: only Kamailio's WS keepalive (2 s here) notices it.
import { browserScenarios } from "./scenarios.ts";

browserScenarios("ws", ["silent"], { keepaliveSeconds: 2, keepBusy: true });
