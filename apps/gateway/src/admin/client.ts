import type { ApprovalRequest, Grant } from '@sluice/core';
import type { AdminErrorBody } from './http.js';
import type { ApproveBody, RejectBody } from './schemas.js';

/** The body of POST /v1/grants as the client sends it (the server validates the names). */
export interface GrantRequestBody {
  readonly subject: string;
  readonly operations: readonly string[];
  readonly minutes: number;
  readonly targets?: readonly string[];
  readonly objects?: readonly string[];
  readonly guardrails?: readonly string[];
  readonly reason?: string;
}

/** The admin API answered with an error: `message` is its message, meant for the person. */
export class AdminApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AdminApiError';
  }
}

/** The admin API could not be reached at all. */
export class AdminUnreachableError extends Error {
  constructor(
    readonly url: string,
    /** A system error code (ECONNREFUSED, ENOTFOUND, ...) or 'timeout', when known. */
    readonly reason: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(
      reason === 'ECONNREFUSED'
        ? `cannot reach the admin API at ${url}: is the gateway running with \`admin:\` configured?`
        : `cannot reach the admin API at ${url}${reason ? ` (${reason})` : ''}: is the gateway running with \`admin:\` configured, and is the address right?`,
      options,
    );
    this.name = 'AdminUnreachableError';
  }
}

export interface AdminClientOptions {
  /** Time allowed for each request. Default 30 s. */
  readonly timeoutMs?: number;
}

function systemCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    const inner = (e as { errors?: unknown }).errors;
    if (Array.isArray(inner) && inner.length > 0) {
      const found = systemCode(inner[0]);
      if (found) return found;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** A small client for the admin API, used by `sluice approvals`. */
export class AdminClient {
  readonly baseUrl: string;
  readonly #token: string;
  readonly #timeoutMs: number;

  constructor(baseUrl: string, token: string, options: AdminClientOptions = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.#token = token;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  async listApprovals(filter: { status?: string; target?: string; limit?: number } = {}): Promise<ApprovalRequest[]> {
    const query = new URLSearchParams();
    if (filter.status !== undefined) query.set('status', filter.status);
    if (filter.target !== undefined) query.set('target', filter.target);
    if (filter.limit !== undefined) query.set('limit', String(filter.limit));
    const q = query.toString();
    return (await this.#call<{ approvals: ApprovalRequest[] }>('GET', `/v1/approvals${q ? `?${q}` : ''}`)).approvals;
  }

  async getApproval(id: string): Promise<ApprovalRequest> {
    return (await this.#call<{ approval: ApprovalRequest }>('GET', `/v1/approvals/${encodeURIComponent(id)}`)).approval;
  }

  async approve(id: string, body: ApproveBody = {}): Promise<ApprovalRequest> {
    return (await this.#call<{ approval: ApprovalRequest }>('POST', `/v1/approvals/${encodeURIComponent(id)}/approve`, body)).approval;
  }

  async reject(id: string, body: RejectBody = {}): Promise<ApprovalRequest> {
    return (await this.#call<{ approval: ApprovalRequest }>('POST', `/v1/approvals/${encodeURIComponent(id)}/reject`, body)).approval;
  }

  async listGrants(options: { all?: boolean } = {}): Promise<Grant[]> {
    return (await this.#call<{ grants: Grant[] }>('GET', `/v1/grants${options.all ? '?all=true' : ''}`)).grants;
  }

  async createGrant(body: GrantRequestBody): Promise<Grant> {
    return (await this.#call<{ grant: Grant }>('POST', '/v1/grants', body)).grant;
  }

  async revokeGrant(id: string): Promise<Grant> {
    return (await this.#call<{ grant: Grant }>('DELETE', `/v1/grants/${encodeURIComponent(id)}`)).grant;
  }

  async #call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.#token}`,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
      const cause = (err as { cause?: unknown }).cause;
      const reason = timedOut
        ? `no answer within ${this.#timeoutMs / 1000} s`
        : (systemCode(err) ?? (cause instanceof Error && cause.message ? cause.message : undefined));
      throw new AdminUnreachableError(this.baseUrl, reason, { cause: err });
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      const error = (parsed as Partial<AdminErrorBody> | undefined)?.error;
      if (error && typeof error.message === 'string') throw new AdminApiError(response.status, String(error.code), error.message);
      throw new AdminApiError(
        response.status,
        'http',
        `the admin API at ${this.baseUrl} answered HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}: is this the address of a sluice gateway's admin API?`,
      );
    }
    if (parsed === undefined || typeof parsed !== 'object') {
      throw new AdminApiError(response.status, 'http', `the admin API at ${this.baseUrl} answered something that is not JSON`);
    }
    return parsed as T;
  }
}
