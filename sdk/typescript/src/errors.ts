import type { components } from "./generated/schema.js";

/** An RFC 9457 problem as the server writes it (`application/problem+json`). */
export type Problem = components["schemas"]["Problem"];

/** A request the server refused (4xx) or failed (5xx); `problem` is its answer. */
export class CallhubError extends Error {
  readonly status: number;
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(`${problem.status} ${problem.title}: ${problem.detail}`);
    this.name = "CallhubError";
    this.status = problem.status;
    this.problem = problem;
  }

  /** The id the server logged this request under (its `x-request-id`). */
  get requestId(): string | undefined {
    return this.problem.requestId ?? undefined;
  }
}

function isProblem(v: unknown): v is Problem {
  const p = v as Partial<Problem> | null;
  return typeof p === "object" && p !== null && typeof p.status === "number" && typeof p.detail === "string";
}

/** The answer's body, or a `CallhubError` carrying its problem. */
export function unwrap<T>(r: { data?: T; error?: unknown; response: Response }): T {
  if (r.response.ok) {
    return r.data as T;
  }
  if (isProblem(r.error)) {
    throw new CallhubError(r.error);
  }
  // Not from callhub itself (a proxy's page, say): a problem made of what there is.
  throw new CallhubError({
    type: "about:blank",
    title: r.response.statusText || "Error",
    status: r.response.status,
    detail: typeof r.error === "string" ? r.error : JSON.stringify(r.error ?? null),
    requestId: r.response.headers.get("x-request-id"),
  });
}
