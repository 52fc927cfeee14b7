/**
 * Each function's environment, as one zod schema, parsed once when its module loads
 * (handlers/*.ts) or when local mode / `kwc` configure a handler (handlers/compose.ts). A bad or
 * missing value fails the cold start with every problem at once, each naming its variable: a
 * typo never becomes NaN, zero lanes or an empty queue URL at 3 a.m. An empty value counts as
 * unset. Every set variable stays readable as `vars` (secret references `env:VAR` read them).
 */
import { z } from "zod";

export class EnvError extends Error {
  override name = "EnvError";
}

const wholeNumber = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `must be ${min} or more`).max(max, `must be ${max} or less`));

const zeroOrOne = z.enum(["0", "1"], "must be 0 or 1").transform((v) => v === "1");

const url = z.url("must be a URL");

/** What the AWS SDK clients read; compose.ts hands it to each client explicitly. */
const aws = {
  AWS_REGION: z.string().optional(),
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_SECRET_ACCESS_KEY: z.string().optional(),
  AWS_SESSION_TOKEN: z.string().optional(),
  /** Local endpoints (local mode, tests); unset in AWS. */
  AWS_ENDPOINT_URL_SQS: url.optional(),
  AWS_ENDPOINT_URL_RDS_DATA: url.optional(),
  AWS_ENDPOINT_URL_SSM: url.optional(),
  AWS_ENDPOINT_URL_SECRETS_MANAGER: url.optional(),
  AWS_ENDPOINT_URL_LAMBDA: url.optional(),
};

const logLevel = z
  .string()
  .transform((v) => v.toUpperCase())
  .pipe(z.enum(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "CRITICAL", "SILENT"], "must be a log level"));

const telemetry = {
  POWERTOOLS_SERVICE_NAME: z.string().optional(),
  POWERTOOLS_METRICS_NAMESPACE: z.string().default("KamailioWatcherCleanup"),
  LOG_LEVEL: logLevel.default("INFO"),
};

const fleet = {
  KWC_FLEET_CONFIG: z.string().regex(/^(file:|ssm-path:)/, "must start with file: or ssm-path:"),
};

/**
 * refresh.requested follow-ups go to the follow-up queue when it is set: only the functions may
 * send to it, and the worker accepts refresh.requested only from it.
 */
const followUps = {
  KWC_FOLLOW_UP_QUEUE_URL: url.optional(),
  /** SQS accepts a DelaySeconds of 0-900. */
  KWC_FOLLOW_UP_DELAY_SECONDS: wholeNumber(0, 900).default(30),
};

const fleetFunction = { ...aws, ...telemetry, ...fleet, ...followUps };

export const WorkerEnvSchema = z.object({
  ...fleetFunction,
  KWC_DLQ_URL: url,
  /** The follow-up queue's ARN: its records are the only ones refresh.requested is accepted from. */
  KWC_FOLLOW_UP_QUEUE_ARN: z.string().regex(/^arn:/, "must be an ARN").optional(),
});

export const ReconcilerEnvSchema = z.object({
  ...fleetFunction,
  /** Nodes swept at once. */
  KWC_RECONCILE_CONCURRENCY: wholeNumber(1, 64).default(4),
  /** 1: report what would be deleted, delete nothing. */
  KWC_RECONCILE_DRY_RUN: zeroOrOne.default(false),
});

export const CleanupEnvSchema = z.object(fleetFunction);

export const IngestAuthorizerEnvSchema = z.object({
  ...aws,
  KWC_INGEST_KEYS_SECRET_ARN: z.string("is not set"),
});

/** `kwc` on an operator's machine: --fleet and --function may stand in for these. */
export const KwcEnvSchema = z.object({
  ...aws,
  KWC_FLEET_CONFIG: fleet.KWC_FLEET_CONFIG.optional(),
  ...followUps,
});

/** The set variables, as given (for `env:VAR` secret references). */
export interface Vars {
  readonly vars: Readonly<Record<string, string>>;
}
export type Parsed<S extends z.ZodType> = z.output<S> & Vars;

export type WorkerEnv = Parsed<typeof WorkerEnvSchema>;
export type ReconcilerEnv = Parsed<typeof ReconcilerEnvSchema>;
export type CleanupEnv = Parsed<typeof CleanupEnvSchema>;
export type IngestAuthorizerEnv = Parsed<typeof IngestAuthorizerEnvSchema>;
export type KwcEnv = Parsed<typeof KwcEnvSchema>;

const parts = { aws: z.object(aws), telemetry: z.object(telemetry), followUps: z.object(followUps) };
export type AwsEnv = z.output<typeof parts.aws>;
export type TelemetryEnv = z.output<typeof parts.telemetry>;
/** What wiring the fleet reads (every function but the authorizer, and `kwc`). */
export type FleetEnv = AwsEnv &
  z.output<typeof parts.followUps> & { KWC_FLEET_CONFIG?: string | undefined } & Vars;

const SECRET_LIKE = /SECRET|TOKEN|KEY_ID|PASSWORD/;

function problem(issue: z.core.$ZodIssue, env: Record<string, string | undefined>): string {
  const name = String(issue.path[0] ?? "(environment)");
  const value = env[name];
  if (value === undefined) return `${name} is not set`;
  const shown = SECRET_LIKE.test(name) ? "" : ` (got ${JSON.stringify(value.slice(0, 80))})`;
  return `${name} ${issue.message}${shown}`;
}

/**
 * Parses `env` with `schema`, or throws one EnvError listing every problem, each with its
 * variable's name. `what` names the function in the message (`worker`, `kwc`).
 */
export function parseEnv<S extends z.ZodType>(
  what: string,
  schema: S,
  env: Record<string, string | undefined>,
): Parsed<S> {
  const set: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value) set[name] = value;
  const result = schema.safeParse(set);
  if (result.success) return { ...(result.data as object), vars: set } as Parsed<S>;
  const problems = result.error.issues.map((issue) => problem(issue, set));
  throw new EnvError(`${what}: invalid environment: ${problems.join("; ")}`);
}
