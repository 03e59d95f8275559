/**
 * The HTTP admin API: review requests (list, show, approve, reject) and grants (list, create,
 * revoke), as JSON under /v1. Every endpoint but the probes (/v1/health, /healthz, /readyz) and
 * /metrics needs `Authorization: Bearer <secret>`, where the secret is a service token or an
 * OIDC token of a configured identity. Failed authentications are limited per source address
 * like database logins.
 *
 * See docs/approvals.md for the endpoints, their bodies and their errors, and docs/operations.md
 * for the probes and the metrics.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ApprovalError,
  ClientFacingError,
  clientErrors,
  type ApprovalErrorCode,
  type ApprovalRequest,
  type ApprovalStatus,
  type Approvals,
  type ApproverSpec,
  type FailureLimiter,
  type Grant,
  type Identity,
  type SecretIdentifier,
  type LineageStore,
  mayApprove,
} from '@sluice/core';
import type { Logger } from 'pino';
import { splitHostPort } from '../config/schema.js';
import { HttpError, parseBody, readBody, send, type Reply } from './http.js';
import { approveBody, grantBody, rejectBody, STATUSES } from './schemas.js';
import { lineageRoutes } from '../lineage/admin.js';
import { readinessBody, type ReadinessReport } from './health.js';

export interface AdminServerOptions {
  /** Where to listen, `host:port` (port 0 picks a free one). */
  readonly address: string;
  readonly approvals: Approvals;
  /** Verifies bearer secrets (the gateway's CompositeAuthenticator). */
  readonly authenticator: SecretIdentifier;
  /** Failed authentications per source address; share the gateway's login limiter. */
  readonly failureLimiter: FailureLimiter;
  readonly logger: Logger;
  /** Global approvers (`approvals.approvers`): they see every request and every grant. */
  readonly approvers?: ApproverSpec;
  /** The configured target names: a grant for a target that does not exist is refused. */
  readonly targetNames?: () => readonly string[];
  /** The lineage store the lineage endpoints answer from (absent: no lineage endpoints). */
  readonly lineage?: LineageStore;
  /**
   * Who may read every identity's lineage (`lineage.readers`, else the global approvers); any
   * identity may read its own (`/v1/lineage/identity/<its subject>`).
   */
  readonly lineageReaders?: ApproverSpec;
  /** Answers GET /readyz (absent: no readiness endpoint). */
  readonly readiness?: () => Promise<ReadinessReport>;
  /** Answers GET /metrics with the Prometheus exposition (absent: Prometheus is off). */
  readonly metrics?: (req: IncomingMessage, res: ServerResponse) => void;
}

export interface AdminServer {
  /** Base URL, for example http://127.0.0.1:7070. */
  readonly url: string;
  readonly port: number;
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

/** Default and largest number of requests one list answers with. */
const DEFAULT_LIST_LIMIT = 200;
const MAX_LIST_LIMIT = 1000;
/** Ids are short; anything longer is not one. */
const MAX_ID_LENGTH = 100;

const NO_APPROVERS: ApproverSpec = { groups: [], subjects: [] };

type Method = 'GET' | 'POST' | 'DELETE';

interface Context {
  readonly req: IncomingMessage;
  readonly identity: Identity;
  /** Path parameters, in order. */
  readonly params: readonly string[];
  readonly query: URLSearchParams;
}

interface Route {
  readonly pattern: RegExp;
  readonly methods: Partial<Record<Method, (ctx: Context) => Promise<Reply>>>;
}

const STATUS_FOR: Record<ApprovalErrorCode, number> = {
  'not-found': 404,
  'not-pending': 409,
  'self-approval': 403,
  'not-an-approver': 403,
  invalid: 400,
  unavailable: 503,
};


/** The bearer secret of a request, or a 401 saying how to send one. */
function bearerSecret(req: IncomingMessage): string {
  const header = req.headers.authorization;
  if (header === undefined || header.trim() === '') {
    throw unauthenticated(
      'authentication required: send "Authorization: Bearer <token>" with a service token or an OIDC token of an identity configured on the gateway',
    );
  }
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthenticated('the Authorization header must be "Bearer <token>" (a service token or an OIDC token)');
  return match[1]!;
}

function unauthenticated(message: string): HttpError {
  return new HttpError(401, 'unauthenticated', message, { 'www-authenticate': 'Bearer realm="sluice"' });
}

/** An id from the path, or 404 when it cannot be one. */
function decodeId(raw: string): string {
  let id: string;
  try {
    id = decodeURIComponent(raw);
  } catch {
    throw new HttpError(404, 'not-found', 'no such id');
  }
  if (id === '' || id.length > MAX_ID_LENGTH) throw new HttpError(404, 'not-found', 'no such id');
  return id;
}

/**
 * Starts the admin API. When it cannot listen it rejects with an error naming the address, whose
 * `code` is the system's (EADDRINUSE, EACCES, ...).
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const { approvals, authenticator, failureLimiter } = options;
  const logger = options.logger.child({ component: 'admin' });
  const globalApprovers = options.approvers ?? NO_APPROVERS;
  const { host, port } = splitHostPort(options.address);

  const isGlobalApprover = (identity: Identity) => mayApprove(globalApprovers, identity);
  const mayView = (identity: Identity, r: ApprovalRequest) =>
    isGlobalApprover(identity) || r.requester.subject === identity.subject || mayApprove(r.approvers, identity);

  const requestNotFound = (id: string) =>
    new HttpError(404, 'not-found', `there is no review request ${id}; list them with: sluice approvals list --all`);

  /** Maps a refusal of the approvals service to its HTTP answer, adding what to do next. */
  const fromApprovalError = (err: ApprovalError, about: 'request' | 'grant'): HttpError => {
    let message = err.message;
    if (err.code === 'not-found') {
      message += about === 'request' ? '; list them with: sluice approvals list --all' : '; list them with: sluice approvals grants --all';
    } else if (err.code === 'self-approval') {
      message += about === 'request' ? '; another approver must decide it' : '; another approver must create it';
    } else if (err.code === 'unavailable') {
      message += '; nothing was changed: check the gateway log, then try again';
    }
    return new HttpError(STATUS_FOR[err.code] ?? 500, err.code, message);
  };

  const decide = async (ctx: Context, action: 'approve' | 'reject'): Promise<Reply> => {
    const id = decodeId(ctx.params[0]!);
    // No look-up in this replica's copy first: a request made on another replica may not have
    // reached it yet, and the service reads the shared store before answering not-found.
    const text = await readBody(ctx.req);
    let approval: ApprovalRequest;
    try {
      if (action === 'approve') {
        const body = parseBody(text, approveBody);
        approval = await approvals.approve(id, ctx.identity, {
          ...(body.reason !== undefined ? { reason: body.reason } : {}),
          ...(body.grantMinutes !== undefined ? { grantForMs: body.grantMinutes * 60_000 } : {}),
        });
      } else {
        const body = parseBody(text, rejectBody);
        approval = await approvals.reject(id, ctx.identity, body.reason !== undefined ? { reason: body.reason } : {});
      }
    } catch (err) {
      if (err instanceof ApprovalError) throw fromApprovalError(err, 'request');
      throw err;
    }
    logger.info({ requestId: id, by: ctx.identity.subject, status: approval.status }, `admin: request ${action === 'approve' ? 'approved' : 'rejected'}`);
    return { status: 200, body: { approval } };
  };

  const lineageReaders = options.lineageReaders ?? globalApprovers;
  const routes: readonly Route[] = [
    ...(options.lineage
      ? lineageRoutes(options.lineage, {
          authorize: (identity, request) => mayApprove(lineageReaders, identity) || (request.kind === 'identity' && request.name === identity.subject),
        })
      : []),
    {
      pattern: /^\/v1\/approvals$/,
      methods: {
        GET: async ({ identity, query }) => {
          const status = parseStatusQuery(query.get('status'));
          const target = query.get('target') ?? undefined;
          const limit = parseLimit(query.get('limit'));
          const visible = approvals
            .list({ ...(status !== undefined ? { status } : {}), ...(target ? { target } : {}) })
            .filter((r) => mayView(identity, r));
          const sorted = [...visible].sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
          return { status: 200, body: { approvals: sorted.slice(0, limit) } };
        },
      },
    },
    {
      pattern: /^\/v1\/approvals\/([^/]+)$/,
      methods: {
        GET: async ({ identity, params }) => {
          const id = decodeId(params[0]!);
          const request = approvals.get(id);
          // Someone else's request is not found for whoever may not see it.
          if (request === undefined || !mayView(identity, request)) throw requestNotFound(id);
          return { status: 200, body: { approval: request } };
        },
      },
    },
    { pattern: /^\/v1\/approvals\/([^/]+)\/approve$/, methods: { POST: (ctx) => decide(ctx, 'approve') } },
    { pattern: /^\/v1\/approvals\/([^/]+)\/reject$/, methods: { POST: (ctx) => decide(ctx, 'reject') } },
    {
      pattern: /^\/v1\/grants$/,
      methods: {
        GET: async ({ identity, query }) => {
          const all = parseFlag(query.get('all'), 'all');
          const grants = approvals
            .listGrants({ includeExpired: all })
            .filter((g) => isGlobalApprover(identity) || g.subject === identity.subject);
          return { status: 200, body: { grants } };
        },
        POST: async ({ req, identity }) => {
          const body = parseBody(await readBody(req), grantBody);
          const known = options.targetNames?.();
          const unknown = known ? (body.targets ?? []).filter((t) => !known.includes(t)) : [];
          if (unknown.length > 0) {
            // It could never apply: grants match targets by name.
            throw new HttpError(400, 'invalid', `targets: no target named ${unknown.map((t) => `"${t}"`).join(', ')} is configured (targets: ${known!.join(', ')})`);
          }
          let grant: Grant;
          try {
            grant = await approvals.grant(
              {
                subject: body.subject,
                operations: body.operations,
                durationMs: body.minutes * 60_000,
                ...(body.targets !== undefined ? { targets: body.targets } : {}),
                ...(body.objects !== undefined ? { objects: body.objects } : {}),
                ...(body.guardrails !== undefined ? { guardrails: body.guardrails } : {}),
                ...(body.reason !== undefined ? { reason: body.reason } : {}),
              },
              identity,
            );
          } catch (err) {
            if (err instanceof ApprovalError) throw fromApprovalError(err, 'grant');
            throw err;
          }
          return { status: 201, body: { grant } };
        },
      },
    },
    {
      pattern: /^\/v1\/grants\/([^/]+)$/,
      methods: {
        DELETE: async ({ identity, params }) => {
          const id = decodeId(params[0]!);
          try {
            return { status: 200, body: { grant: await approvals.revokeGrant(id, identity) } };
          } catch (err) {
            if (err instanceof ApprovalError) throw fromApprovalError(err, 'grant');
            throw err;
          }
        },
      },
    },
  ];

  /** Verifies the bearer secret, limiting failures per source address like logins. */
  const authenticate = async (req: IncomingMessage, source: string): Promise<Identity> => {
    const gate = failureLimiter.check(source);
    if (!gate.allowed) {
      const err = clientErrors.rateLimited('failed authentication attempts from this address', gate.retryAfterSeconds);
      throw new HttpError(429, 'rate-limited', err.message, { 'retry-after': String(Math.max(1, Math.ceil(gate.retryAfterSeconds))) });
    }
    const secret = bearerSecret(req);
    try {
      const identity = await authenticator.identify(secret, source);
      failureLimiter.recordSuccess(source);
      return identity;
    } catch (cause) {
      failureLimiter.recordFailure(source);
      if (!ClientFacingError.is(cause)) {
        logger.error({ err: cause }, 'admin: the authenticator failed unexpectedly');
        throw unauthenticated('authentication failed: the credential could not be verified');
      }
      const hint = cause.hint !== undefined ? ` (${cause.hint})` : '';
      throw unauthenticated(`${cause.message}${hint}`);
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const source = req.socket.remoteAddress ?? 'unknown';
    const method = req.method ?? 'GET';
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://admin.invalid');
    } catch {
      send(res, new HttpError(400, 'invalid', 'the request URL cannot be read').reply());
      return;
    }
    const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    let subject: string | undefined;
    let reply: Reply;
    try {
      if (path === '/v1/health') {
        if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, path, ['GET', 'HEAD']);
        reply = { status: 200, body: { ok: true } };
      } else if (path === '/healthz') {
        // Liveness: answering at all is the proof that the event loop turns.
        if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, path, ['GET', 'HEAD']);
        reply = { status: 200, body: { status: 'ok' } };
      } else if (path === '/readyz') {
        if (method !== 'GET' && method !== 'HEAD') throw methodNotAllowed(method, path, ['GET', 'HEAD']);
        if (!options.readiness) throw new HttpError(404, 'not-found', 'readiness is not served by this admin server');
        const report = await options.readiness();
        reply = { status: report.ready ? 200 : 503, body: readinessBody(report) };
      } else if (path === '/metrics') {
        if (method !== 'GET') throw methodNotAllowed(method, path, ['GET']);
        if (!options.metrics) {
          throw new HttpError(404, 'not-found', 'Prometheus metrics are off: set telemetry.prometheus: true (docs/operations.md)');
        }
        options.metrics(req, res);
        logger.debug({ source, method, path }, 'admin: request');
        return;
      } else {
        let route: Route | undefined;
        let match: RegExpExecArray | null = null;
        for (const r of routes) {
          match = r.pattern.exec(path);
          if (match) {
            route = r;
            break;
          }
        }
        if (!route || !match) {
          throw new HttpError(404, 'not-found', `there is no endpoint ${method} ${path}; the API is described in docs/approvals.md`);
        }
        const handler = route.methods[method as Method];
        if (!handler) throw methodNotAllowed(method, path, Object.keys(route.methods));
        const identity = await authenticate(req, source);
        subject = identity.subject;
        reply = await handler({ req, identity, params: match.slice(1), query: url.searchParams });
      }
    } catch (err) {
      if (err instanceof HttpError) {
        if (err.status === 401 || err.status === 429) {
          logger.info({ source, method, path, reason: err.message }, 'admin: request refused');
        }
        reply = err.reply();
      } else {
        logger.error({ err, source, method, path, subject }, 'admin: request failed');
        reply = new HttpError(500, 'internal', 'internal error in the admin API; the gateway logged it').reply();
      }
    }
    logger.debug({ source, method, path, status: reply.status, subject }, 'admin: request');
    if (!res.headersSent && !res.destroyed) send(res, reply);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      logger.error({ err }, 'admin: request failed');
      if (!res.headersSent) res.destroy();
    });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const failure: NodeJS.ErrnoException = new Error(`cannot listen on ${options.address} (admin): ${err.code ?? err.message}`, { cause: err });
      if (err.code !== undefined) failure.code = err.code;
      reject(failure);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'admin: server error'));

  const bound = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${bound}`,
    port: bound,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

function methodNotAllowed(method: string, path: string, allowed: readonly string[]): HttpError {
  return new HttpError(405, 'method-not-allowed', `${method} is not allowed on ${path}; use ${allowed.join(' or ')}`, {
    allow: allowed.join(', '),
  });
}

/** `status=pending` (the default), `all`, or statuses separated by commas. */
function parseStatusQuery(value: string | null): ApprovalStatus | readonly ApprovalStatus[] | undefined {
  if (value === null || value === '') return 'pending';
  if (value === 'all') return undefined;
  const statuses = value.split(',').map((s) => s.trim());
  for (const s of statuses) {
    if (!(STATUSES as readonly string[]).includes(s)) {
      throw new HttpError(400, 'invalid', `status: unknown status ${JSON.stringify(s)}; use all or one or more of ${STATUSES.join(', ')}`);
    }
  }
  return statuses as ApprovalStatus[];
}

function parseLimit(value: string | null): number {
  if (value === null || value === '') return DEFAULT_LIST_LIMIT;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIST_LIMIT) {
    throw new HttpError(400, 'invalid', `limit: expected a whole number from 1 to ${MAX_LIST_LIMIT}, got ${JSON.stringify(value)}`);
  }
  return n;
}

function parseFlag(value: string | null, name: string): boolean {
  if (value === null || value === '' || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1') return true;
  throw new HttpError(400, 'invalid', `${name}: expected true or false, got ${JSON.stringify(value)}`);
}
