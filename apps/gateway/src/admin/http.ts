import type { IncomingMessage, ServerResponse } from 'node:http';
import type { z } from 'zod';

/** Largest request body the admin API reads. */
export const MAX_BODY_BYTES = 64 * 1024;

/** Error codes of the admin API: the approvals service's codes and the HTTP layer's own. */
export type AdminErrorCode =
  | 'not-found'
  | 'not-pending'
  | 'self-approval'
  | 'not-an-approver'
  | 'invalid'
  | 'unavailable'
  | 'unauthenticated'
  | 'rate-limited'
  | 'method-not-allowed'
  | 'too-large'
  | 'internal';

/** The JSON body of every error answer. */
export interface AdminErrorBody {
  readonly error: { readonly code: AdminErrorCode; readonly message: string };
}

/** An answer to send: a status, a JSON body and extra headers. */
export interface Reply {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

/** A refusal raised while handling a request; turned into its JSON error answer. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: AdminErrorCode,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }

  reply(): Reply {
    const body: AdminErrorBody = { error: { code: this.code, message: this.message } };
    return { status: this.status, body, headers: this.headers };
  }
}

export function send(res: ServerResponse, reply: Reply): void {
  const text = `${JSON.stringify(reply.body)}\n`;
  res.writeHead(reply.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...reply.headers,
  });
  res.end(text);
}

/**
 * Reads a request body of at most MAX_BODY_BYTES. A larger one is refused with 413 as soon as
 * it is known to be too large (by its Content-Length, or once that many bytes arrived); the
 * rest is discarded by the HTTP server after the answer.
 */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const tooLarge = () =>
      new HttpError(413, 'too-large', `the request body is larger than ${MAX_BODY_BYTES / 1024} KiB`, { connection: 'close' });
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        cleanup();
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** Parses a JSON body (an empty body is `{}`) and validates it, naming the bad fields. */
export function parseBody<T>(text: string, schema: z.ZodType<T>): T {
  let value: unknown = {};
  if (text.trim() !== '') {
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new HttpError(400, 'invalid', `the request body is not valid JSON (${(err as Error).message}); send a JSON object`);
    }
  }
  const result = schema.safeParse(value);
  if (!result.success) throw new HttpError(400, 'invalid', `invalid request body: ${describeIssues(result.error.issues)}`);
  return result.data;
}

/** One line naming each bad field and what is expected there. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const field = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '');
      if (issue.code === 'unrecognized_keys') {
        const names = issue.keys.map((k) => JSON.stringify(k)).join(', ');
        return `${field ? `${field}: ` : ''}unknown field${issue.keys.length > 1 ? 's' : ''} ${names}`;
      }
      return `${field || '(the body)'}: ${issue.message}`;
    })
    .join('; ');
}
