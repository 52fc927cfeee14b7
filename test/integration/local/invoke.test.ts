// The Lambda Invoke-compatible endpoint, driven by the real @aws-sdk/client-lambda.
import { InvokeCommand, LambdaClient, ResourceNotFoundException } from "@aws-sdk/client-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type InvokeServer, startInvokeServer } from "../../../local/invoke.ts";
import { until } from "./until.ts";

let server: InvokeServer;
let lambda: LambdaClient;
const seen: unknown[] = [];

beforeAll(async () => {
  server = await startInvokeServer({
    functions: {
      "kwc-cleanup": async (event, context) => {
        seen.push(event);
        if ((event as { fail?: boolean }).fail) throw new TypeError("bad request scope");
        return {
          echo: event,
          functionName: context.functionName,
          remaining: context.getRemainingTimeInMillis() > 0,
        };
      },
    },
  });
  lambda = new LambdaClient({
    endpoint: server.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts: 1,
  });
});

afterAll(async () => {
  lambda.destroy();
  await server.close();
});

const decode = (payload: Uint8Array | undefined) => JSON.parse(new TextDecoder().decode(payload));
const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));

describe("local Lambda Invoke endpoint", () => {
  it("returns the handler's result to InvokeCommand, by name and by ARN", async () => {
    const byName = await lambda.send(
      new InvokeCommand({ FunctionName: "kwc-cleanup", Payload: encode({ scope: "expired", dryRun: true }) }),
    );
    expect(byName.StatusCode).toBe(200);
    expect(byName.FunctionError).toBeUndefined();
    expect(decode(byName.Payload)).toEqual({
      echo: { scope: "expired", dryRun: true },
      functionName: "kwc-cleanup",
      remaining: true,
    });
    const byArn = await lambda.send(
      new InvokeCommand({
        FunctionName: "arn:aws:lambda:us-east-1:123456789012:function:kwc-cleanup:live",
        Payload: encode({ scope: "node" }),
      }),
    );
    expect(decode(byArn.Payload).echo).toEqual({ scope: "node" });
  });

  it("reports a thrown error as FunctionError Unhandled with its type and message", async () => {
    const out = await lambda.send(
      new InvokeCommand({ FunctionName: "kwc-cleanup", Payload: encode({ fail: true }) }),
    );
    expect(out.StatusCode).toBe(200);
    expect(out.FunctionError).toBe("Unhandled");
    expect(decode(out.Payload)).toMatchObject({ errorType: "TypeError", errorMessage: "bad request scope" });
  });

  it("rejects an unknown function with ResourceNotFoundException", async () => {
    const call = lambda.send(new InvokeCommand({ FunctionName: "no-such-fn", Payload: encode({}) }));
    await expect(call).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it("answers 202 to an Event invocation and runs it in the background; 204 to DryRun", async () => {
    const before = seen.length;
    const dry = await lambda.send(
      new InvokeCommand({
        FunctionName: "kwc-cleanup",
        InvocationType: "DryRun",
        Payload: encode({ dry: 1 }),
      }),
    );
    expect(dry.StatusCode).toBe(204);
    const event = await lambda.send(
      new InvokeCommand({
        FunctionName: "kwc-cleanup",
        InvocationType: "Event",
        Payload: encode({ async: 1 }),
      }),
    );
    expect(event.StatusCode).toBe(202);
    await until("the background invocation", () => seen.length === before + 1);
    expect(seen.at(-1)).toEqual({ async: 1 });
  });
});
