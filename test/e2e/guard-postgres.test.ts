// The deletion guard's attacks and controls (guard-scenario.ts) on PostgreSQL.
import { guardScenarios } from "./guard-scenario.ts";

guardScenarios("postgres");
