/**
 * Lambda request authorizer of the ingest: compares `x-kwc-key` with the Secrets Manager value
 * named by KWC_INGEST_SECRET_ARN, in constant time, with the value cached between invocations.
 * API Gateway itself answers 401 when the header is missing; a deny here becomes a 403.
 */
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { createIngestAuthorizer, createIngestKeyChecker } from "../core/ingest-auth.ts";

const secretId = process.env.KWC_INGEST_SECRET_ARN;
if (!secretId) throw new Error("KWC_INGEST_SECRET_ARN is not set");
const secrets = new SecretsManagerClient({});

export const handler = createIngestAuthorizer(
  createIngestKeyChecker({
    loadKey: async () => {
      const secret = await secrets.send(new GetSecretValueCommand({ SecretId: secretId }));
      if (!secret.SecretString) throw new Error("the ingest key secret has no string value");
      return secret.SecretString;
    },
  }),
);
