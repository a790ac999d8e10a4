/** GET /health (200 when serving, 503 with why not) and GET /metrics (Prometheus text). */
import type { FastifyInstance } from 'fastify';
import type { ServingState } from '../lifecycle.js';
import { PROMETHEUS_CONTENT_TYPE, type Registry } from '../metrics.js';

/** `publicMessage` words a failed load's error for clients (/health needs no key: no paths in it). */
export function registerHealth(app: FastifyInstance, life: ServingState, publicMessage: (message: string) => string = (m) => m): void {
  app.get('/health', async (_req, reply) => {
    if (life.state === 'ready') return { status: 'ok' };
    reply.code(503);
    if (life.state === 'loading') return { status: 'loading' };
    if (life.state === 'failed') return { status: 'error', message: publicMessage(life.loadErrorMessage) };
    return { status: 'shutting_down' };
  });
}

export function registerMetrics(app: FastifyInstance, registry: Registry): void {
  app.get('/metrics', async (_req, reply) => reply.type(PROMETHEUS_CONTENT_TYPE).send(registry.render()));
}
