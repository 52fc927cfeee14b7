// Browser scenarios over WSS, the certificate trusted through the browser's own NSS database.
import { browserScenarios } from "./scenarios.ts";

browserScenarios("wss");
