// Each function's environment: one schema, parsed when the entry module loads; a bad value fails
// the cold start naming its variable. And the handlers built from an env object (local mode's way).
import { afterEach, describe, expect, it, vi } from "vitest";
import { memoryTelemetry } from "#adapters/telemetry.ts";
import { parseFleetConfig } from "#core/fleet.ts";
import type { DlqItem } from "#core/ports.ts";
import { awsClientConfig, workerHandlerFromEnv } from "#handlers/compose.ts";
import {
  CleanupEnvSchema,
  EnvError,
  IngestAuthorizerEnvSchema,
  parseEnv,
  ReconcilerEnvSchema,
  WorkerEnvSchema,
} from "#handlers/env.ts";
import { fleetOf, nodeConfig, RecordingSink } from "../../helpers/fakes.ts";

const fleet = parseFleetConfig(fleetOf([nodeConfig("n1")]));
const FLEET = { KWC_FLEET_CONFIG: "file:/nonexistent/fleet.json" };
const WORKER = { ...FLEET, KWC_DLQ_URL: "http://127.0.0.1:9/000000000000/dlq" };

describe("function environments", () => {
  it("fills the defaults; an empty value counts as unset", () => {
    const env = parseEnv("reconciler", ReconcilerEnvSchema, { ...FLEET, KWC_RECONCILE_CONCURRENCY: "" });
    expect(env).toMatchObject({
      KWC_RECONCILE_CONCURRENCY: 4,
      KWC_RECONCILE_DRY_RUN: false,
      KWC_FOLLOW_UP_DELAY_SECONDS: 30,
      POWERTOOLS_METRICS_NAMESPACE: "KamailioWatcherCleanup",
      LOG_LEVEL: "INFO",
    });
    expect(
      parseEnv("reconciler", ReconcilerEnvSchema, { ...FLEET, KWC_RECONCILE_DRY_RUN: "1" }),
    ).toMatchObject({
      KWC_RECONCILE_DRY_RUN: true,
    });
    // Every set variable stays readable: secret references `env:VAR` resolve from it.
    expect(parseEnv("cleanup", CleanupEnvSchema, { ...FLEET, MY_TOKEN: "t" }).vars.MY_TOKEN).toBe("t");
  });

  it.each([
    [
      { KWC_RECONCILE_CONCURRENCY: "abc" },
      /KWC_RECONCILE_CONCURRENCY must be a whole number from 1 to 64 \(got "abc"\)/,
    ],
    [{ KWC_RECONCILE_CONCURRENCY: "0" }, /KWC_RECONCILE_CONCURRENCY must be 1 or more/],
    [{ KWC_RECONCILE_DRY_RUN: "true" }, /KWC_RECONCILE_DRY_RUN must be 0 or 1/],
    [{ KWC_FOLLOW_UP_DELAY_SECONDS: "901" }, /KWC_FOLLOW_UP_DELAY_SECONDS must be 900 or less/],
    [{ KWC_FOLLOW_UP_QUEUE_URL: "queue" }, /KWC_FOLLOW_UP_QUEUE_URL must be a URL/],
    [{ KWC_FLEET_CONFIG: "/etc/fleet.json" }, /KWC_FLEET_CONFIG must start with file: or ssm-path:/],
    [{ LOG_LEVEL: "loud" }, /LOG_LEVEL must be a log level/],
  ])("refuses %o naming the variable", (bad, message) => {
    expect(() => parseEnv("reconciler", ReconcilerEnvSchema, { ...FLEET, ...bad })).toThrow(EnvError);
    expect(() => parseEnv("reconciler", ReconcilerEnvSchema, { ...FLEET, ...bad })).toThrow(message);
  });

  it("reports every problem at once, and never prints a secret's value", () => {
    const run = () =>
      parseEnv("worker", WorkerEnvSchema, {
        KWC_FOLLOW_UP_DELAY_SECONDS: "soon",
        AWS_ENDPOINT_URL_SQS: "nope",
        AWS_SECRET_ACCESS_KEY: "s3cret",
      });
    expect(run).toThrow(/^worker: invalid environment: /);
    for (const problem of [
      "KWC_FLEET_CONFIG is not set",
      'KWC_FOLLOW_UP_DELAY_SECONDS must be a whole number from 0 to 900 (got "soon")',
      'AWS_ENDPOINT_URL_SQS must be a URL (got "nope")',
      "KWC_DLQ_URL is not set",
    ]) {
      expect(run).toThrow(problem);
    }
    expect(run).not.toThrow(/s3cret/);
    expect(() => parseEnv("ingest-authorizer", IngestAuthorizerEnvSchema, {})).toThrow(
      /KWC_INGEST_KEYS_SECRET_ARN is not set/,
    );
  });

  describe("cold start of the Lambda entry modules", () => {
    afterEach(() => {
      vi.unstubAllEnvs();
      vi.resetModules();
    });

    it("fails the reconciler's cold start on KWC_RECONCILE_CONCURRENCY=abc (it used to become NaN: zero lanes)", async () => {
      vi.stubEnv("KWC_FLEET_CONFIG", FLEET.KWC_FLEET_CONFIG);
      vi.stubEnv("KWC_RECONCILE_CONCURRENCY", "abc");
      await expect(import("#handlers/reconciler.ts")).rejects.toThrow(
        /reconciler: invalid environment: KWC_RECONCILE_CONCURRENCY must be a whole number/,
      );
    });

    it("fails the worker's cold start without a DLQ (it used to send to an empty URL)", async () => {
      vi.stubEnv("KWC_FLEET_CONFIG", FLEET.KWC_FLEET_CONFIG);
      await expect(import("#handlers/worker.ts")).rejects.toThrow(/KWC_DLQ_URL is not set/);
    });

    it("loads each entry with a valid environment (control)", async () => {
      for (const [name, value] of Object.entries({
        ...WORKER,
        KWC_INGEST_KEYS_SECRET_ARN: "arn:s",
        AWS_REGION: "eu-west-1",
      })) {
        vi.stubEnv(name, value);
      }
      for (const entry of ["worker", "reconciler", "cleanup", "ingest-authorizer"]) {
        const mod = (await import(`../../../lambdas/handlers/${entry}.ts`)) as { handler: unknown };
        expect(typeof mod.handler, entry).toBe("function");
      }
    });
  });
});

describe("handlers built from an env object", () => {
  it("hands the SDK exactly the region, endpoint and credentials the env object has", () => {
    expect(awsClientConfig({}, undefined)).toEqual({});
    expect(
      awsClientConfig(
        { AWS_REGION: "us-east-1", AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "b" },
        "http://127.0.0.1:1",
      ),
    ).toEqual({
      region: "us-east-1",
      endpoint: "http://127.0.0.1:1",
      credentials: { accessKeyId: "a", secretAccessKey: "b" },
    });
  });

  it("tees the worker's telemetry: a rejected event reaches the DLQ and is counted in the copy", async () => {
    const env = parseEnv("worker", WorkerEnvSchema, { ...WORKER, LOG_LEVEL: "SILENT" });
    const copy = memoryTelemetry();
    const dlq = new RecordingSink<DlqItem>();
    const handler = workerHandlerFromEnv(env, { tee: copy.telemetry, fleet: async () => fleet, dlq });
    const record = { messageId: "m1", body: "not json" } as never;
    expect(await handler({ Records: [record] })).toEqual({ batchItemFailures: [] });
    expect(dlq.items.map((d) => d.sourceMessageId)).toEqual(["m1"]);
    expect(copy.counts).toMatchObject({ EventsRejected: 1, DlqSent: 1 });
  });
});
