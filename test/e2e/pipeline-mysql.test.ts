// End-to-end on the local pipeline, MariaDB (the MySQL dialect).
import { pipelineScenarios } from "./pipeline-scenario.ts";

pipelineScenarios("mysql");
