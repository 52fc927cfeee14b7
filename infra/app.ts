#!/usr/bin/env -S npx tsx
import { App } from "aws-cdk-lib";
import { stackPropsFromContext } from "./context.ts";
import { KamailioWatcherCleanupStack } from "./stack.ts";

const app = new App();
const stackName = String(app.node.tryGetContext("stackName") ?? "KamailioWatcherCleanup");
new KamailioWatcherCleanupStack(
  app,
  stackName,
  stackPropsFromContext((key) => app.node.tryGetContext(key)),
);
