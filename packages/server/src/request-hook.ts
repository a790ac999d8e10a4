/**
 * What happens to every request before its route: it is counted when its socket closes, refused
 * while the server shuts down (but /health, which answers 503 `shutting_down` itself), and, with an
 * API key, refused without the right bearer token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ServerError } from './errors.js';
import type { ServingState } from './lifecycle.js';
import type { Counter } from './metrics.js';
import { sendError } from './replies.js';

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** Counts the request by route and status once its response is over (499: the client left before any header). */
function countOnClose(req: FastifyRequest, reply: FastifyReply, requests: Counter): void {
  const endpoint = req.routeOptions.url ?? 'unmatched';
  reply.raw.once('close', () => {
    const status = reply.raw.headersSent ? String(reply.raw.statusCode) : '499';
    requests.inc({ endpoint, status });
  });
}

/** A check of the Authorization header against `apiKey`: the error to answer, or undefined when the key is right. */
export function bearerCheck(apiKey: string): (authorization: string | undefined) => ServerError | undefined {
  const keyDigest = sha256(apiKey);
  return (authorization) => {
    const m = /^Bearer\s+(.+)$/i.exec(authorization ?? '');
    // Compared as digests: constant time whatever the lengths.
    if (m && timingSafeEqual(sha256(m[1].trim()), keyDigest)) return undefined;
    return new ServerError(
      'IE_SERVER_UNAUTHORIZED',
      m ? 'the API key is not valid' : 'an API key is required: Authorization: Bearer <key>',
    );
  };
}

export function addRequestHook(app: FastifyInstance, life: ServingState, requests: Counter, apiKey: string | undefined): void {
  const authorize = apiKey !== undefined ? bearerCheck(apiKey) : undefined;
  app.addHook('onRequest', async (req, reply) => {
    countOnClose(req, reply, requests);
    if (life.shuttingDown) {
      reply.header('connection', 'close');
      // /health says so in its own shape (503 {"status": "shutting_down"}), as it says `loading`.
      if (req.routeOptions.url === '/health') return;
      return sendError(reply, new ServerError('IE_SERVER_SHUTTING_DOWN', 'the server is shutting down', null, 5));
    }
    // /health stays open: load balancers and orchestrators probe it without the key.
    const denied = authorize && req.routeOptions.url !== '/health' ? authorize(req.headers.authorization) : undefined;
    if (denied) return sendError(reply, denied);
  });
}
