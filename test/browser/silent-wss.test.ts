// The silent browser over WSS: only Kamailio's WS keepalive (2 s here) notices it.
import { browserScenarios } from "./scenarios.ts";

browserScenarios("wss", ["silent"], { keepaliveSeconds: 2, keepBusy: true });
