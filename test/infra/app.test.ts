/**
 * The app as `cdk.json` runs it (infra/app.ts → createApp), configured only through context:
 * default, import and MySQL modes in-process, and ONE real `cdk synth` through the CLI that
 * bundles the real handler entries with esbuild, offline and without AWS credentials.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Template } from "aws-cdk-lib/assertions";
import { afterAll, describe, expect, it } from "vitest";
import { createApp } from "../../infra/context.ts";
import { IMPORTED_CLUSTER_ARN, IMPORTED_SECRET_ARN, IMPORTED_VPC } from "./synth.ts";

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const noBundling = { "aws:cdk:bundling-stacks": [] };
/** What the stack sets in the functions' environment (references only). */
const handlerEnv = {
  AWS_REGION: "eu-west-1",
  KWC_FLEET_CONFIG: "ssm-path:/kwc/fleet",
  KWC_DLQ_URL: "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq",
  KWC_INGEST_KEYS_SECRET_ARN: IMPORTED_SECRET_ARN,
};

function synthFromContext(context: Record<string, unknown>): Template {
  const { app, stack } = createApp({ context: { ...noBundling, ...context } });
  app.synth();
  return Template.fromStack(stack);
}

describe("app from context (in-process synth)", () => {
  it("import mode: -c databaseClusterArn/databaseSecretArn/vpcId… imports, creates no cluster or VPC", () => {
    const template = synthFromContext({
      databaseClusterArn: IMPORTED_CLUSTER_ARN,
      databaseSecretArn: IMPORTED_SECRET_ARN,
      databaseEngine: "postgres",
      vpcId: IMPORTED_VPC.vpcId,
      vpcCidr: IMPORTED_VPC.vpcCidrBlock,
      availabilityZones: IMPORTED_VPC.availabilityZones.join(","),
      privateSubnetIds: IMPORTED_VPC.privateSubnetIds.join(","),
      natAvailable: "true",
    });
    template.resourceCountIs("AWS::RDS::DBCluster", 0);
    template.resourceCountIs("AWS::EC2::VPC", 0);
    template.resourceCountIs("AWS::EC2::VPCEndpoint", 0);
    template.hasResourceProperties("AWS::Lambda::Function", {
      VpcConfig: { SubnetIds: IMPORTED_VPC.privateSubnetIds },
    });
    expect(JSON.stringify(template.toJSON())).toContain(IMPORTED_CLUSTER_ARN);
  });

  it("MySQL mode: -c databaseEngine=mysql creates Aurora MySQL with the Data API", () => {
    const template = synthFromContext({ databaseEngine: "mysql" });
    template.hasResourceProperties("AWS::RDS::DBCluster", {
      Engine: "aurora-mysql",
      EnableHttpEndpoint: true,
    });
  });

  it("context values arrive as strings from -c and still configure numbers and flags", () => {
    const template = synthFromContext({
      maxReceiveCount: "7",
      workerMaxConcurrency: "4",
      workerBatchingWindowSeconds: "2",
      alarmEmail: "ops@example.org",
    });
    template.hasResourceProperties("AWS::Lambda::EventSourceMapping", {
      ScalingConfig: { MaximumConcurrency: 4 },
      MaximumBatchingWindowInSeconds: 2,
    });
    template.resourceCountIs("AWS::SNS::Topic", 1);
  });
});

describe("cdk synth through the CLI, bundling the real handlers", () => {
  let outDir = "";
  afterAll(async () => {
    if (outDir) await rm(outDir, { recursive: true, force: true });
  });

  it("synthesizes the default app offline with no credentials (cdk-nag passing); each bundle has a source map and loads", async () => {
    outDir = await mkdtemp(join(tmpdir(), "kwc-cdk-out-"));
    const env: NodeJS.ProcessEnv = {};
    for (const [name, value] of Object.entries(process.env)) {
      if (!name.startsWith("AWS_") && !name.startsWith("CDK_")) env[name] = value;
    }
    env.AWS_EC2_METADATA_DISABLED = "true";
    env.CDK_DISABLE_CLI_TELEMETRY = "true";
    const started = performance.now();
    await run(
      "npx",
      ["cdk", "synth", "--quiet", "--no-notices", "--no-version-reporting", "--output", outDir],
      {
        cwd: repoRoot,
        env,
        timeout: 150_000,
        maxBuffer: 16 * 1024 * 1024,
      },
    );
    const seconds = (performance.now() - started) / 1000;
    console.log(`cdk synth (CLI, real esbuild bundling of 4 functions): ${seconds.toFixed(1)} s`);

    const template = JSON.parse(await readFile(join(outDir, "KamailioWatcherCleanup.template.json"), "utf8"));
    const functions = Object.values(
      template.Resources as Record<string, { Type: string; Metadata?: Record<string, string> }>,
    ).filter((resource) => resource.Type === "AWS::Lambda::Function");
    expect(functions).toHaveLength(4);
    for (const fn of functions) {
      const assetDir = join(outDir, fn.Metadata?.["aws:asset:path"] ?? "missing");
      const files = await readdir(assetDir);
      expect(files).toEqual(expect.arrayContaining(["index.mjs", "index.mjs.map"]));
      expect((await stat(join(assetDir, "index.mjs"))).size).toBeGreaterThan(1000);
      // The ESM bundle loads on Node and exports the handler (module-load code runs, no AWS call).
      const loaded = await run(
        process.execPath,
        [
          "--input-type=module",
          "-e",
          `const m = await import(${JSON.stringify(join(assetDir, "index.mjs"))}); process.stdout.write(typeof m.handler);`,
        ],
        { env: { ...env, ...handlerEnv }, timeout: 30_000 },
      );
      expect(loaded.stdout).toBe("function");
    }
  });
});
