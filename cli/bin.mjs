#!/usr/bin/env node
// `kwc` launcher: registers this package's tsx loader in-process and runs cli/main.ts (no build
// step), so `npx kwc …` works from any directory.
import { register } from "tsx/esm/api";

register();
const { run } = await import(new URL("./main.ts", import.meta.url).href);
await run();
