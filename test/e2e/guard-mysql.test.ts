// The deletion guard's attacks and controls (guard-scenario.ts) on MariaDB.
import { guardScenarios } from "./guard-scenario.ts";

guardScenarios("mysql");
