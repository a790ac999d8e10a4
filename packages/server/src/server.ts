/**
 * The OpenAI-compatible HTTP server on Fastify: it listens before the model is loaded (/health says
 * 503 until then), validates bodies with JSON schemas, hands generations to a Scheduler, streams
 * them as server-sent events, and answers every failure with OpenAI's error object. This module
 * puts the parts together; each route group lives in routes/, the answering in answer.ts.
 */
import type { Engine } from '@ie/runtime';
import Fastify, { type FastifyInstance } from 'fastify';
import { ServingState, loadModel, shutdown, type ServerState } from './lifecycle.js';
import { Registry } from './metrics.js';
import { ServerError, hideModelPath, withModelId } from './errors.js';
import { sendError, setErrorReplies } from './replies.js';
import { addRequestHook, bearerCheck } from './request-hook.js';
import { registerChat } from './routes/chat.js';
import { registerCompletions } from './routes/completions.js';
import type { RouteContext } from './routes/context.js';
import { registerEmbeddings } from './routes/embeddings.js';
import { registerHealth, registerMetrics } from './routes/health.js';
import { registerModels } from './routes/models.js';
import { registerTokens } from './routes/tokens.js';
import type { Scheduler } from './scheduler.js';
import { serverMetrics } from './server-metrics.js';

export type { ServerState } from './lifecycle.js';

export interface ServeOptions {
  /** Loads the engine. Called once the server listens, so /health answers 503 meanwhile. */
  load: () => Promise<Engine>;
  /** The id clients name in `model`, listed by /v1/models. */
  modelId: string;
  /**
   * Where the model lies on this machine (what `load` opens): no client-facing message names it,
   * `modelId` stands in, a failed load's included (the loaded engine's own path is hidden too).
   */
  modelPath?: string;
  /** Default 127.0.0.1: loopback, until someone decides otherwise. */
  host?: string;
  /** Default 8080; 0 picks a free port (see `url`). */
  port?: number;
  /** Requests running at once. Default 1. */
  parallel?: number;
  /** Requests waiting for a slot; beyond, 429. Default 16. */
  queue?: number;
  /** When set, every route but /health needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Largest request body in bytes (413 beyond). Default 1 MiB. */
  bodyLimit?: number;
  /** How long running streams may go on at shutdown before they are cut. Default 10 s. */
  shutdownGraceMs?: number;
  /** The scheduler over the loaded engine. Default: a SerialScheduler with `parallel` and `queue`. */
  scheduler?: (engine: Engine, options: { parallel: number; queue: number }) => Scheduler;
  /** Lifecycle lines and unexpected errors. Default: none. */
  log?: (line: string) => void;
}

export interface IeServer {
  /** http://host:port, with the port the system gave when 0 was asked. */
  readonly url: string;
  readonly app: FastifyInstance;
  readonly state: ServerState;
  /** Resolves when the model is loaded; rejects with the load error. */
  readonly ready: Promise<void>;
  readonly metrics: Registry;
  /** The engine once loaded. */
  readonly engine: Engine | undefined;
  /** Stops accepting, fails queued requests, lets running streams finish (up to the grace period), disposes the engine. */
  close(): Promise<void>;
}

/**
 * The Fastify instance with ie's settings: JSON-schema validation as written (no coercion), JSON
 * bodies only, and OpenAI's error object also for what fails before routing (a URL that does not
 * decode: 401 without the key where one is set, else 400) and for requests Node's HTTP parser
 * refuses (a malformed request line or Content-Length: a raw 400 with the same body).
 */
function createApp(bodyLimit: number, apiKey: string | undefined): FastifyInstance {
  const authorize = apiKey !== undefined ? bearerCheck(apiKey) : undefined;
  const app = Fastify({
    logger: false,
    bodyLimit,
    // Closing is answered by the onRequest hook, in OpenAI's error shape.
    return503OnClosing: false,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
    frameworkErrors: (e, req, reply) => {
      const denied = authorize?.(req.headers.authorization);
      sendError(reply, denied ?? new ServerError('IE_SERVER_BAD_REQUEST', e.message));
    },
    clientErrorHandler: (e, socket) => {
      if (!socket.writable) return socket.destroy(e);
      const status = (e as { code?: string }).code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      const body = JSON.stringify(
        new ServerError('IE_SERVER_BAD_REQUEST', `the HTTP request is malformed (${(e as { code?: string }).code ?? e.message})`).toJSON(),
      );
      socket.end(
        `HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    },
  });
  // JSON only: a text/plain body is refused (415) rather than parsed as a string.
  app.removeContentTypeParser('text/plain');
  return app;
}

export async function startServer(options: ServeOptions): Promise<IeServer> {
  const parallel = options.parallel ?? 1;
  const queue = options.queue ?? 16;
  const log = options.log ?? (() => {});
  const created = Math.floor(Date.now() / 1000);
  const life = new ServingState();
  const registry = new Registry();
  const metrics = serverMetrics(registry, life, { parallel, queue });

  const app = createApp(options.bodyLimit ?? 1 << 20, options.apiKey);
  addRequestHook(app, life, metrics.requests, options.apiKey);
  // Clients know the model by its id: the runtime's messages name its path on this machine.
  const publicError = (err: ServerError) => withModelId(err, life.engine?.path ?? options.modelPath, options.modelId);
  setErrorReplies(app, log, publicError);
  const ctx: RouteContext = { life, modelId: options.modelId, metrics, log, publicError };
  registerChat(app, ctx);
  registerCompletions(app, ctx);
  registerEmbeddings(app, ctx);
  registerTokens(app, ctx);
  registerModels(app, options.modelId, created);
  registerHealth(app, life, (message) => hideModelPath(message, options.modelPath, options.modelId));
  registerMetrics(app, registry);

  const address = await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 8080 });
  metrics.lag.start();
  log(`ie: listening on ${address}`);

  const loaded = loadModel(life, { ...options, parallel, queue, log });
  const graceMs = options.shutdownGraceMs ?? 10_000;
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= shutdown(life, app, graceMs, loaded, metrics.lag);
    return closing;
  };

  return {
    url: address,
    app,
    get state() {
      return life.state;
    },
    ready: loaded,
    metrics: registry,
    get engine() {
      return life.engine;
    },
    close,
  };
}
