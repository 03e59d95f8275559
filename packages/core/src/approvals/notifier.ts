/**
 * Notifications about review requests: a generic signed webhook and Slack-compatible incoming
 * webhooks. Sending never blocks nor fails the approval flow: `notify` returns at once, the
 * POST is retried twice with a backoff on network errors, timeouts and 5xx answers, and a
 * failure is only logged (with the URL's origin, never its path, which for Slack holds a
 * secret).
 *
 * ## The generic webhook
 *
 * `POST <url>` with a JSON body
 *
 * ```json
 * { "event": "approval.requested", "request": { "id": "r-7k3p9q", "status": "pending", ... }, "sentAt": "2024-05-01T12:00:00.000Z" }
 * ```
 *
 * where `event` is one of `approval.requested`, `approval.approved`, `approval.rejected`,
 * `approval.expired`, `approval.abandoned`, and `request` is the request as the admin API shows
 * it, except that the values of bound parameters are left out (`parameterCount` says how many
 * there were). Headers:
 *
 * - `Content-Type: application/json`
 * - `X-Sluice-Event`: the event name
 * - `X-Sluice-Timestamp`: when it was sent, in Unix seconds
 * - `X-Sluice-Signature: sha256=<hex>` when the webhook has a `secret`: the HMAC-SHA256, keyed
 *   with the secret, of `<timestamp>.<body>` (the timestamp header, a dot, and the raw body
 *   bytes exactly as received).
 *
 * A receiver verifies a delivery by (see {@link verifyWebhookSignature}):
 *
 * 1. reading the raw body before any JSON parsing (re-serializing changes the bytes);
 * 2. rejecting a timestamp more than a few minutes (say 5) away from its own clock, so a
 *    captured delivery cannot be replayed later;
 * 3. computing `HMAC-SHA256(secret, timestamp + "." + body)` in hex and comparing it with the
 *    header's value after `sha256=` in constant time (`crypto.timingSafeEqual`);
 * 4. optionally remembering the request ids and events it has seen, since a retried delivery
 *    carries the same event again.
 *
 * ## Slack
 *
 * `POST <url>` with `{ text, blocks }` (Block Kit): a header, the requester, the target, the
 * rule and why, the statement in a code block (cut at about 2,000 characters) and the command
 * an approver runs, `sluice approvals approve <id>`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApprovalRequest } from './types.js';

export type NotifierConfig =
  | {
      readonly kind: 'webhook';
      readonly url: string;
      /** Signs each delivery (X-Sluice-Signature). */
      readonly secret?: string;
      /** Per attempt. Default 5,000 ms. */
      readonly timeoutMs?: number;
    }
  | { readonly kind: 'slack'; readonly url: string; readonly timeoutMs?: number };

/** The moments approvers and requesters are told about. */
export type NotificationEvent =
  | 'approval.requested'
  | 'approval.approved'
  | 'approval.rejected'
  | 'approval.expired'
  | 'approval.abandoned';

/** A request as sent to a webhook: bound parameter values are left out. */
export type NotifiedRequest = Omit<ApprovalRequest, 'parameters'> & { readonly parameterCount?: number };

export interface WebhookPayload {
  readonly event: NotificationEvent;
  readonly request: NotifiedRequest;
  readonly sentAt: string;
}

export interface NotifierLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface NotifiersOptions {
  readonly logger: NotifierLogger;
  /** Delay before the first retry; the second waits four times as long. Default 500 ms. */
  readonly retryDelayMs?: number;
  /** For tests. */
  readonly now?: () => number;
}

/** Sends notifications to every configured endpoint. */
export interface Notifiers {
  /** Starts the deliveries and returns at once; never throws. */
  notify(event: NotificationEvent, request: ApprovalRequest): void;
  /** Resolves when every delivery started so far has ended (sent or given up). */
  idle(): Promise<void>;
  /** Aborts deliveries in flight and waiting retries; later notify calls do nothing. */
  close(): void;
}

const DEFAULT_TIMEOUT_MS = 5_000;
const DEFAULT_RETRY_DELAY_MS = 500;
const ATTEMPTS = 3;
/** Statement text longer than this is cut in Slack messages. */
export const SLACK_STATEMENT_LIMIT = 2_000;

/** Checks the configurations (URL, timeout); throws a clear error for a bad one. */
export function validateNotifierConfig(config: NotifierConfig, index = 0): void {
  const where = `notifier ${index + 1} (${String((config as { kind?: unknown }).kind)})`;
  if (config.kind !== 'webhook' && config.kind !== 'slack') {
    throw new Error(`${where}: kind must be "webhook" or "slack"`);
  }
  let url: URL;
  try {
    url = new URL(config.url);
  } catch {
    throw new Error(`${where}: the url is not a valid URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error(`${where}: the url must be http or https`);
  if (config.timeoutMs !== undefined && !(config.timeoutMs > 0 && Number.isFinite(config.timeoutMs))) {
    throw new Error(`${where}: timeoutMs must be a positive number`);
  }
  if (config.kind === 'webhook' && config.secret !== undefined && config.secret.length === 0) {
    throw new Error(`${where}: secret must not be empty`);
  }
}

export function createNotifiers(configs: readonly NotifierConfig[], options: NotifiersOptions): Notifiers {
  configs.forEach((c, i) => validateNotifierConfig(c, i));
  const { logger } = options;
  const now = options.now ?? Date.now;
  const retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
  const controller = new AbortController();
  const inFlight = new Set<Promise<void>>();

  const deliver = async (config: NotifierConfig, event: NotificationEvent, request: ApprovalRequest): Promise<void> => {
    const origin = new URL(config.url).origin;
    const log = { notifier: config.kind, origin, event, requestId: request.id };
    let lastProblem = '';
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      if (controller.signal.aborted) return;
      if (attempt > 1) {
        try {
          await sleep(retryDelayMs * 4 ** (attempt - 2), undefined, { signal: controller.signal, ref: false });
        } catch {
          return; // closed
        }
      }
      const sentAtMs = now();
      const { body, headers } =
        config.kind === 'webhook'
          ? webhookDelivery(event, request, sentAtMs, config.secret)
          : { body: JSON.stringify(buildSlackMessage(event, request)), headers: { 'Content-Type': 'application/json' } };
      try {
        const res = await fetch(config.url, {
          method: 'POST',
          headers,
          body,
          redirect: 'error',
          signal: attemptSignal(controller.signal, config.timeoutMs ?? DEFAULT_TIMEOUT_MS),
        });
        await res.body?.cancel().catch(() => undefined);
        if (res.ok) return;
        lastProblem = `HTTP ${res.status}`;
        if (res.status < 500) break; // the receiver refuses it: retrying will not help
      } catch (err) {
        if (controller.signal.aborted) return;
        lastProblem = describeFetchError(err);
      }
    }
    logger.warn({ ...log, problem: lastProblem }, 'approval notification could not be delivered');
  };

  return {
    notify(event, request) {
      if (controller.signal.aborted) return;
      for (const config of configs) {
        const p = deliver(config, event, request).catch((err: unknown) => {
          logger.error({ notifier: config.kind, event, requestId: request.id, err }, 'approval notification failed unexpectedly');
        });
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
    },
    async idle() {
      while (inFlight.size > 0) await Promise.all([...inFlight]);
    },
    close() {
      controller.abort();
    },
  };
}

/** Aborted on close or after `timeoutMs` (AbortSignal.any is missing before Node 20.3: timeout only). */
function attemptSignal(closed: AbortSignal, timeoutMs: number): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return typeof AbortSignal.any === 'function' ? AbortSignal.any([closed, timeout]) : timeout;
}

function describeFetchError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'TimeoutError') return 'timed out';
  const cause = (err as { cause?: unknown }).cause;
  const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? `${err.message} (${code})` : err.message;
}

/** The request without parameter values. */
export function notifiedRequest(request: ApprovalRequest): NotifiedRequest {
  const { parameters, ...rest } = request;
  return parameters === undefined ? rest : { ...rest, parameterCount: parameters.length };
}

/** The JSON body of a generic webhook delivery. */
export function buildWebhookPayload(event: NotificationEvent, request: ApprovalRequest, sentAtMs: number): WebhookPayload {
  return { event, request: notifiedRequest(request), sentAt: new Date(sentAtMs).toISOString() };
}

function webhookDelivery(
  event: NotificationEvent,
  request: ApprovalRequest,
  sentAtMs: number,
  secret: string | undefined,
): { body: string; headers: Record<string, string> } {
  const body = JSON.stringify(buildWebhookPayload(event, request, sentAtMs));
  const timestamp = String(Math.floor(sentAtMs / 1000));
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    'X-Sluice-Event': event,
    'X-Sluice-Timestamp': timestamp,
  };
  if (secret !== undefined) headers['X-Sluice-Signature'] = webhookSignature(secret, timestamp, body);
  return { body, headers };
}

/** `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, the X-Sluice-Signature header value. */
export function webhookSignature(secret: string, timestamp: string, body: string | Buffer): string {
  const mac = createHmac('sha256', secret);
  mac.update(`${timestamp}.`);
  mac.update(body);
  return `sha256=${mac.digest('hex')}`;
}

export interface VerifyWebhookOptions {
  /** How far the timestamp may be from the receiver's clock. Default 300 s. */
  readonly toleranceSeconds?: number;
  /** The receiver's clock, in ms. Default Date.now. */
  readonly now?: number;
}

/**
 * What a receiver does with a delivery: true when the signature header matches the raw body and
 * timestamp for the secret, and the timestamp is within the tolerance of `now`.
 */
export function verifyWebhookSignature(
  secret: string,
  headers: { readonly timestamp: string | undefined; readonly signature: string | undefined },
  rawBody: string | Buffer,
  options?: VerifyWebhookOptions,
): boolean {
  const { timestamp, signature } = headers;
  if (timestamp === undefined || signature === undefined || !/^\d{1,12}$/.test(timestamp)) return false;
  const tolerance = options?.toleranceSeconds ?? 300;
  const nowSeconds = (options?.now ?? Date.now()) / 1000;
  if (Math.abs(nowSeconds - Number(timestamp)) > tolerance) return false;
  const expected = Buffer.from(webhookSignature(secret, timestamp, rawBody), 'utf8');
  const offered = Buffer.from(signature, 'utf8');
  return expected.length === offered.length && timingSafeEqual(expected, offered);
}

/** A Slack incoming-webhook message (Block Kit). */
export interface SlackMessage {
  readonly text: string;
  readonly blocks: readonly Record<string, unknown>[];
}

const HEADLINES: Record<NotificationEvent, string> = {
  'approval.requested': 'Approval requested',
  'approval.approved': 'Approved',
  'approval.rejected': 'Rejected',
  'approval.expired': 'Expired',
  'approval.abandoned': 'Abandoned',
};

/** The Slack message for an event. */
export function buildSlackMessage(event: NotificationEvent, request: ApprovalRequest): SlackMessage {
  const headline = `${HEADLINES[event]}: ${request.id}`;
  const who = `${request.requester.subject} (${request.requester.kind})`;
  const text =
    event === 'approval.requested'
      ? `${who} asks to run a statement on ${request.target} (${request.rule}): sluice approvals approve ${request.id}`
      : `${headline}, requested by ${who} on ${request.target}` +
        (request.decidedBy ? ` — by ${request.decidedBy.subject}` : '') +
        (request.decisionReason ? `: ${request.decisionReason}` : '');

  const fields: Record<string, unknown>[] = [
    mrkdwn(`*Requester*\n${escapeMrkdwn(who)}`),
    mrkdwn(`*Target*\n${escapeMrkdwn(request.target)}`),
    mrkdwn(`*Rule*\n${escapeMrkdwn(request.rule)}`),
    mrkdwn(`*Why*\n${escapeMrkdwn(request.why)}`),
  ];
  if (request.reason) fields.push(mrkdwn(`*Requester's reason*\n${escapeMrkdwn(request.reason)}`));
  if (request.decidedBy) fields.push(mrkdwn(`*Decided by*\n${escapeMrkdwn(request.decidedBy.subject)}`));
  if (request.decisionReason) fields.push(mrkdwn(`*Decision*\n${escapeMrkdwn(request.decisionReason)}`));

  let statement = escapeMrkdwn(request.statement).replace(/```/g, '`\u200b``');
  if (statement.length > SLACK_STATEMENT_LIMIT) {
    let cut = statement.slice(0, SLACK_STATEMENT_LIMIT);
    const amp = cut.lastIndexOf('&');
    if (amp > cut.length - 6 && !cut.slice(amp).includes(';')) cut = cut.slice(0, amp); // not inside an entity
    statement = `${cut}\n… (cut: the statement has ${request.statement.length} characters)`;
  }
  const blocks: Record<string, unknown>[] = [
    { type: 'header', text: { type: 'plain_text', text: truncate(headline, 150), emoji: false } },
    { type: 'section', fields: fields.slice(0, 10) },
    { type: 'section', text: mrkdwn(`\`\`\`\n${statement}\n\`\`\``) },
  ];
  if (event === 'approval.requested') {
    blocks.push({
      type: 'section',
      text: mrkdwn(
        `Approve: \`sluice approvals approve ${request.id}\`\nReject: \`sluice approvals reject ${request.id}\`\n` +
          `Expires at ${request.expiresAt}`,
      ),
    });
  }
  return { text: escapeMrkdwn(text), blocks };
}

function mrkdwn(text: string): Record<string, unknown> {
  return { type: 'mrkdwn', text: truncate(text, 2_990) };
}

function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/** Slack's control characters in mrkdwn text: &, < and > (so `<!channel>` and links cannot be injected). */
function escapeMrkdwn(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
