// End-to-end on the local pipeline, PostgreSQL.
import { pipelineScenarios } from "./pipeline-scenario.ts";

pipelineScenarios("postgres");
