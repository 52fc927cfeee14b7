// The fleet config and secret sources over mocked SSM and Secrets Manager, and their cache.
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { GetParametersByPathCommand, SSMClient } from "@aws-sdk/client-ssm";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, it } from "vitest";
import { cached, loadFleetConfig, resolveSecret } from "#adapters/config-source.ts";
import { nodeConfig } from "../../helpers/fakes.ts";

const node = nodeConfig("node-1");

describe("config source", () => {
  const global = {
    version: 1,
    database: { engine: "mysql", resourceArn: "arn:c", secretArn: "arn:s", name: "kamailio" },
    notifyFailureCodes: [481],
  };
  it("reads ssm-path: global + one parameter per node, across pages", async () => {
    const ssm = mockClient(SSMClient);
    ssm
      .on(GetParametersByPathCommand, { Path: "/kwc/fleet", NextToken: undefined })
      .resolves({
        Parameters: [
          { Name: "/kwc/fleet/global", Value: JSON.stringify(global) },
          { Name: "/kwc/fleet/nodes/node-2", Value: JSON.stringify(nodeConfig("node-2")) },
        ],
        NextToken: "p2",
      })
      .on(GetParametersByPathCommand, { Path: "/kwc/fleet", NextToken: "p2" })
      .resolves({ Parameters: [{ Name: "/kwc/fleet/nodes/node-1", Value: JSON.stringify(node) }] });
    const fleet = await loadFleetConfig("ssm-path:/kwc/fleet", { ssm: new SSMClient({}) });
    expect(fleet.nodes.map((n) => n.id)).toEqual(["node-1", "node-2"]);
    expect(fleet.database.engine).toBe("mysql");
    ssm.restore();
  });

  it("reads file: and rejects invalid configs with every problem named", async () => {
    const text = JSON.stringify({ ...global, nodes: [node] });
    const fleet = await loadFleetConfig("file:/etc/fleet.json", { readText: async () => text });
    expect(fleet.nodes[0]?.id).toBe("node-1");
    const bad = JSON.stringify({
      ...global,
      nodes: [
        { ...node, watchersTable: "aw; DROP TABLE x", rpcUrl: "http://203.0.113.5/RPC" },
        { ...node, id: "node-1" },
      ],
    });
    await expect(loadFleetConfig("file:/x", { readText: async () => bad })).rejects.toThrow(
      /nodes\.0\.rpcUrl: an https URL.*nodes\.0\.watchersTable: an SQL identifier.*duplicate node id node-1/,
    );
    await expect(loadFleetConfig("s3://x")).rejects.toThrow(/must start with file: or ssm-path:/);
  });

  it("resolves secret references; values never come from the reference text", async () => {
    expect(await resolveSecret("env:TOKEN_A", { env: { TOKEN_A: "abc" } })).toBe("abc");
    await expect(resolveSecret("env:TOKEN_B", { env: {} })).rejects.toThrow(/not set/);
    expect(await resolveSecret("file:/run/t", { readText: async () => "xyz\n" })).toBe("xyz");
    const sm = mockClient(SecretsManagerClient);
    sm.on(GetSecretValueCommand, { SecretId: "arn:aws:secretsmanager:eu-west-1:1:secret:kwc" }).resolves({
      SecretString: "from-sm",
    });
    expect(
      await resolveSecret("secretsmanager:arn:aws:secretsmanager:eu-west-1:1:secret:kwc", {
        secretsManager: new SecretsManagerClient({}),
      }),
    ).toBe("from-sm");
    sm.restore();
  });

  it("caches for the TTL and retries after a failure", async () => {
    let t = 0;
    let loads = 0;
    const get = cached(
      async () => {
        loads++;
        if (loads === 1) throw new Error("first fails");
        return loads;
      },
      1000,
      () => t,
    );
    await expect(get()).rejects.toThrow("first fails");
    expect(await get()).toBe(2);
    t = 999;
    expect(await get()).toBe(2);
    t = 2000;
    expect(await get()).toBe(3);
  });
});
