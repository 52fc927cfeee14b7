#!/usr/bin/env -S npx tsx
// Entry of `cdk synth` / `cdk deploy` (cdk.json): settings come from context, see docs/deploy.md.
import { createApp } from "./context.ts";

createApp();
