/**
 * On-demand cleanup Lambda (direct invoke, e.g. `kwc --remote`): the event is a CleanupRequest
 * (lambdas/core/cleanup-request.ts); the answer is `{ ok: true, report }` or
 * `{ ok: false, error: { type, message } }` (an invalid request gets a readable reason, never a stack).
 * Thin: clients are built once at module load; createCleanupHandler(runtime) is what tests call.
 */
import type { Context } from "aws-lambda";
import { type ReconcileRuntime, runRequest, runtimeFromEnv } from "../adapters/reconcile-runtime.ts";
import { type CleanupReport, CleanupRequestSchema } from "../core/cleanup-request.ts";
import { formatIssues } from "../core/parse.ts";
import { RequestError } from "../core/reconcile-sweep.ts";

export type CleanupResponse =
  | { ok: true; report: CleanupReport }
  | { ok: false; error: { type: "BadRequest" | "Failed"; message: string } };

/** Rows listed per node in a Lambda answer (a synchronous response is limited to 6 MB). */
export const MAX_LISTED_ROWS = 2000;
/** Stop starting work this long before the function's own timeout. */
const SAFETY_MS = 5000;

export function createCleanupHandler(runtime: ReconcileRuntime) {
  return async (
    event: unknown,
    context?: Pick<Context, "getRemainingTimeInMillis">,
  ): Promise<CleanupResponse> => {
    const parsed = CleanupRequestSchema.safeParse(event);
    if (!parsed.success) {
      return {
        ok: false,
        error: { type: "BadRequest", message: `invalid request: ${formatIssues(parsed.error)}` },
      };
    }
    const remaining = context?.getRemainingTimeInMillis?.();
    try {
      const { store: _stats, ...report } = await runRequest(runtime, parsed.data, {
        maxListedRows: MAX_LISTED_ROWS,
        ...(remaining ? { deadline: Date.now() + remaining - SAFETY_MS } : {}),
      });
      return { ok: true, report };
    } catch (error) {
      const e = error as Error;
      return {
        ok: false,
        error: {
          type: error instanceof RequestError ? "BadRequest" : "Failed",
          message: e.message ?? String(e),
        },
      };
    }
  };
}

export const handler = createCleanupHandler(runtimeFromEnv());
