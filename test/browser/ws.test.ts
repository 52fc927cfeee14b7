// Browser scenarios over WS (docs/browsers.md).
import { browserScenarios } from "./scenarios.ts";

browserScenarios("ws");
