/**
 * Every failure as the reply a client gets: Fastify's validation and body-parser errors and the
 * engine's errors mapped to a ServerError, sent as OpenAI's error object with its status and headers.
 */
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { ServerError, fromRuntimeError } from './errors.js';

/** A JSON path from Ajv's instancePath: `/messages/0/content` → `messages[0].content`. */
export function paramOf(instancePath: string, missing?: string): string | null {
  const parts = instancePath.split('/').filter(Boolean);
  if (missing) parts.push(missing);
  if (parts.length === 0) return null;
  return parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

type ValidationEntry = NonNullable<FastifyError['validation']>[number];

/**
 * A field that may take several forms (`stop`: a string or an array of up to 16) failed them all:
 * each form's first complaint, the `null` form left out (null means the default), so that
 * `"stop": [17 strings]` says the array is too long rather than that it is not a string.
 */
function unionMessage(entries: readonly ValidationEntry[], base: string): string {
  const forms = entries.filter(
    (x) =>
      x.keyword !== 'anyOf' &&
      x.keyword !== 'oneOf' &&
      x.instancePath.startsWith(base) &&
      !(x.keyword === 'type' && (x.params as { type?: string }).type === 'null'),
  );
  const said = [...new Set(forms.map((x) => `${paramOf(x.instancePath) ?? 'the body'} ${x.message}`))];
  return said.length ? said.join(', or ') : `${paramOf(base) ?? 'the body'} has none of the allowed forms`;
}

/** Any Fastify or engine failure as the ServerError a client gets. */
export function toServerError(e: unknown): ServerError {
  if (e instanceof ServerError) return e;
  const f = e as FastifyError;
  if (f?.validation?.length) {
    const union = f.validation.find((x) => x.keyword === 'anyOf' || x.keyword === 'oneOf');
    if (union) return new ServerError('IE_SERVER_BAD_REQUEST', unionMessage(f.validation, union.instancePath), paramOf(union.instancePath));
    const v = f.validation[0];
    const missing = v.keyword === 'required' ? String((v.params as { missingProperty?: string }).missingProperty) : undefined;
    const param = paramOf(v.instancePath, missing);
    const message = missing ? `${param} is required` : `${param ?? 'the body'} ${v.message}`;
    return new ServerError('IE_SERVER_BAD_REQUEST', message, param);
  }
  switch (f?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ServerError('IE_SERVER_BODY_TOO_LARGE', f.message);
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new ServerError('IE_SERVER_INVALID_JSON', `the body is not valid JSON: ${f.message}`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ServerError('IE_SERVER_UNSUPPORTED_MEDIA', 'send the body as application/json');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new ServerError('IE_SERVER_BAD_REQUEST', f.message);
  }
  if (e instanceof SyntaxError) return new ServerError('IE_SERVER_INVALID_JSON', `the body is not valid JSON: ${e.message}`);
  // The client went away while its body was arriving (Node's 'aborted' / ECONNRESET): nobody reads
  // the answer, and it is not the server's failure to log.
  if ((e as NodeJS.ErrnoException)?.code === 'ECONNRESET' || (e instanceof Error && e.message === 'aborted'))
    return new ServerError('IE_SERVER_BAD_REQUEST', 'the client closed the connection before the body was complete');
  return fromRuntimeError(e);
}

/** The most of a refused body read and dropped (and for how long) before the 413 is sent. */
const DRAIN_BYTES = 64 << 20;
const DRAIN_MS = 10_000;

/** Reads `body` to its end, dropping it: true if it ended within DRAIN_BYTES and DRAIN_MS. */
function drained(body: NodeJS.ReadableStream & { destroyed?: boolean }): Promise<boolean> {
  return new Promise((resolve) => {
    let bytes = 0;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      body.removeListener('data', onData);
      body.removeListener('end', onEnd);
      body.removeListener('close', onClose);
      body.removeListener('error', onClose);
      if (!ok) body.pause();
      resolve(ok);
    };
    const onData = (chunk: Buffer | string) => {
      bytes += chunk.length;
      if (bytes > DRAIN_BYTES) done(false);
    };
    const onEnd = () => done(true);
    const onClose = () => done(false);
    const timer = setTimeout(() => done(false), DRAIN_MS);
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('close', onClose);
    body.once('error', onClose);
    body.resume();
  });
}

export function sendError(reply: FastifyReply, err: ServerError): FastifyReply {
  if (err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter));
  if (err.code === 'IE_SERVER_UNAUTHORIZED') reply.header('www-authenticate', 'Bearer');
  return reply.code(err.status).type('application/json; charset=utf-8').send(err.toJSON());
}

/**
 * Thrown errors and unknown routes answered in OpenAI's shape; internal ones (bugs, engine failures)
 * logged with their stack. `publicError` rewrites what a client may not read (the model's path on
 * the server's disk: its id instead).
 */
export function setErrorReplies(
  app: FastifyInstance,
  log: (line: string) => void,
  publicError: (err: ServerError) => ServerError = (err) => err,
): void {
  app.setErrorHandler(async (e, req, reply) => {
    const err = publicError(toServerError(e));
    if (err.status >= 500 && err.code === 'IE_SERVER_INTERNAL') log(`ie: error: ${(e as Error)?.stack ?? String(e)}`);
    // Fastify refuses an oversized body from its Content-Length without reading it; answered then,
    // the connection closed under a client still sending (fetch and the openai client saw EPIPE, not
    // the 413). The rest is read and thrown away first, up to a bound.
    if (err.code === 'IE_SERVER_BODY_TOO_LARGE' && !req.raw.complete && !(await drained(req.raw))) reply.header('connection', 'close');
    return sendError(reply, err);
  });

  app.setNotFoundHandler((req, reply) =>
    sendError(reply, new ServerError('IE_SERVER_NOT_FOUND', `no route for ${req.method} ${req.url.slice(0, 200)}`)),
  );
}
