/**
 * The OpenAI-compatible HTTP server on Fastify: it listens before the model is loaded (/health says
 * 503 until then), validates bodies with JSON schemas, hands generations to a Scheduler, streams
 * them as server-sent events, and answers every failure with OpenAI's error object.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Engine } from '@ie/runtime';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply } from 'fastify';
import { ServerError, fromRuntimeError } from './errors.js';
import { Counter, EventLoopLag, Gauge, Histogram, PROMETHEUS_CONTENT_TYPE, Registry } from './metrics.js';
import {
  CHAT_BODY_SCHEMA,
  COMPLETION_BODY_SCHEMA,
  EMBEDDINGS_BODY_SCHEMA,
  embeddingInputs,
  encodeEmbedding,
  type EmbeddingsBody,
  checkChat,
  checkCompletion,
  finishReason,
  messageText,
  samplingOf,
  usage,
  type ChatBody,
  type CompletionBody,
} from './openai.js';
import { SerialScheduler, type GenerationRequest, type Outcome, type Scheduler } from './scheduler.js';

export interface ServeOptions {
  /** Loads the engine. Called once the server listens, so /health answers 503 meanwhile. */
  load: () => Promise<Engine>;
  /** The id clients name in `model`, listed by /v1/models. */
  modelId: string;
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

export type ServerState = 'loading' | 'ready' | 'failed' | 'closing' | 'closed';

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

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5];
const TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80];
const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320];
const LAG_BUCKETS = [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1];

/** A JSON path from Ajv's instancePath: `/messages/0/content` → `messages[0].content`. */
function paramOf(instancePath: string, missing?: string): string | null {
  const parts = instancePath.split('/').filter(Boolean);
  if (missing) parts.push(missing);
  if (parts.length === 0) return null;
  return parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** Any Fastify or engine failure as the ServerError a client gets. */
function toServerError(e: unknown): ServerError {
  if (e instanceof ServerError) return e;
  const f = e as FastifyError;
  if (f?.validation?.length) {
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
  return fromRuntimeError(e);
}

/** An embed() failure: a bad input (empty, a token id outside the vocabulary) or one too long names `input`. */
function embedError(e: unknown): ServerError {
  const code = (e as { code?: unknown })?.code;
  const message = e instanceof Error ? e.message : String(e);
  if (code === 'IE_INVALID_OPTION') return new ServerError('IE_SERVER_BAD_REQUEST', message, 'input');
  if (code === 'IE_CONTEXT_OVERFLOW') return new ServerError('IE_SERVER_CONTEXT_LENGTH', message, 'input');
  return fromRuntimeError(e);
}

function sendError(reply: FastifyReply, err: ServerError): FastifyReply {
  if (err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter));
  if (err.code === 'IE_SERVER_UNAUTHORIZED') reply.header('www-authenticate', 'Bearer');
  return reply.code(err.status).type('application/json; charset=utf-8').send(err.toJSON());
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/** Waits until `res` can take more (or is gone): a slow client slows its own stream, not the server. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

export async function startServer(options: ServeOptions): Promise<IeServer> {
  const host = options.host ?? '127.0.0.1';
  const parallel = options.parallel ?? 1;
  const queue = options.queue ?? 16;
  const graceMs = options.shutdownGraceMs ?? 10_000;
  const log = options.log ?? (() => {});
  const keyDigest = options.apiKey !== undefined ? sha256(options.apiKey) : undefined;
  const created = Math.floor(Date.now() / 1000);

  let state: ServerState = 'loading';
  let engine: Engine | undefined;
  let scheduler: Scheduler | undefined;
  let loadError: unknown;

  const registry = new Registry();
  const requests = registry.add(
    new Counter('ie_requests_total', 'HTTP requests answered, by endpoint and status (499: the client left first).'),
  );
  const promptTokens = registry.add(new Counter('ie_prompt_tokens_total', 'Prompt tokens of finished generations.'));
  const generationTokens = registry.add(new Counter('ie_generation_tokens_total', 'Tokens generated by finished generations.'));
  const cachedTokens = registry.add(
    new Counter('ie_prompt_tokens_cached_total', 'Prompt tokens found in the KV cache (a common prefix with the previous request).'),
  );
  const cancelled = registry.add(new Counter('ie_requests_cancelled_total', 'Generations stopped because the client disconnected.'));
  registry.add(new Gauge('ie_queue_depth', 'Requests waiting for a slot.', () => scheduler?.stats().queued ?? 0));
  registry.add(new Gauge('ie_active_sequences', 'Requests holding a slot.', () => scheduler?.stats().active ?? 0));
  registry.add(new Gauge('ie_parallel_slots', 'Requests that may run at once (--parallel).', () => parallel));
  registry.add(new Gauge('ie_queue_capacity', 'Requests that may wait (--queue).', () => queue));
  registry.add(new Gauge('ie_model_loaded', '1 once the model is loaded and requests are served.', () => (state === 'ready' ? 1 : 0)));
  registry.add(new Gauge('process_resident_memory_bytes', 'Resident memory of the server process.', () => process.memoryUsage.rss()));
  const ttft = registry.add(
    new Histogram('ie_time_to_first_token_seconds', 'From the request to its first generated token, queueing included.', TTFT_BUCKETS),
  );
  const perToken = registry.add(
    new Histogram(
      'ie_time_per_output_token_seconds',
      "Decode step time: each request's mean step, counted once per decoded token.",
      LATENCY_BUCKETS,
    ),
  );
  const duration = registry.add(new Histogram('ie_request_duration_seconds', 'From the request to its last token.', DURATION_BUCKETS));
  const lagHistogram = registry.add(
    new Histogram('ie_event_loop_lag_seconds', "How late the server's event loop ran a 10 ms timer.", LAG_BUCKETS),
  );
  const lag = new EventLoopLag(lagHistogram);

  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimit ?? 1 << 20,
    // Closing is answered by the onRequest hook, in OpenAI's error shape.
    return503OnClosing: false,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  });

  // JSON only: a text/plain body is refused (415) rather than parsed as a string.
  app.removeContentTypeParser('text/plain');

  app.addHook('onRequest', async (req, reply) => {
    const endpoint = req.routeOptions.url ?? 'unmatched';
    reply.raw.once('close', () => {
      const status = reply.raw.headersSent ? String(reply.raw.statusCode) : '499';
      requests.inc({ endpoint, status });
    });
    if (state === 'closing' || state === 'closed') {
      reply.header('connection', 'close');
      return sendError(reply, new ServerError('IE_SERVER_SHUTTING_DOWN', 'the server is shutting down', null, 5));
    }
    if (keyDigest && req.routeOptions.url !== '/health') {
      const h = req.headers.authorization ?? '';
      const m = /^Bearer\s+(.+)$/i.exec(h);
      // Compared as digests: constant time whatever the lengths.
      if (!m || !timingSafeEqual(sha256(m[1].trim()), keyDigest))
        return sendError(
          reply,
          new ServerError('IE_SERVER_UNAUTHORIZED', m ? 'the API key is not valid' : 'an API key is required: Authorization: Bearer <key>'),
        );
    }
  });

  app.setErrorHandler((e, _req, reply) => {
    const err = toServerError(e);
    if (err.status >= 500 && err.code === 'IE_SERVER_INTERNAL') log(`ie: error: ${(e as Error)?.stack ?? String(e)}`);
    return sendError(reply, err);
  });

  app.setNotFoundHandler((req, reply) =>
    sendError(reply, new ServerError('IE_SERVER_NOT_FOUND', `no route for ${req.method} ${req.url.slice(0, 200)}`)),
  );

  const ready = (): { engine: Engine; scheduler: Scheduler } => {
    if (state === 'ready' && engine && scheduler) return { engine, scheduler };
    if (state === 'loading') throw new ServerError('IE_SERVER_LOADING', 'the model is still loading', null, 5);
    if (state === 'failed')
      throw new ServerError('IE_SERVER_LOAD_FAILED', `the model failed to load: ${(loadError as Error)?.message ?? String(loadError)}`);
    throw new ServerError('IE_SERVER_SHUTTING_DOWN', 'the server is shutting down', null, 5);
  };

  const checkModel = (model: string) => {
    if (model !== options.modelId)
      throw new ServerError(
        'IE_SERVER_MODEL_NOT_FOUND',
        `the model ${JSON.stringify(model)} is not served here; this server serves ${JSON.stringify(options.modelId)}`,
        'model',
      );
  };

  const record = (o: Outcome) => {
    promptTokens.inc({}, o.promptTokens);
    cachedTokens.inc({}, o.metrics.cachedTokens ?? 0);
    generationTokens.inc({}, o.completionTokens);
    if (Number.isFinite(o.ttftMs)) ttft.observe(o.ttftMs / 1000);
    duration.observe(o.totalMs / 1000);
    const steps = Math.round((o.metrics.decodeMs * o.metrics.decodeTokensPerSec) / 1000);
    if (steps > 0) perToken.observe(o.metrics.decodeMs / steps / 1000, steps);
  };

  /** Submits a generation and answers it, as one JSON object or as a stream of chunks. */
  async function answer(
    reply: FastifyReply,
    sched: Scheduler,
    request: GenerationRequest,
    stream: boolean,
    includeUsage: boolean,
  ): Promise<unknown> {
    const chat = request.kind === 'chat';
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
    const stamp = Math.floor(Date.now() / 1000);
    const model = options.modelId;
    const object = chat ? 'chat.completion.chunk' : 'text_completion';
    const ticket = sched.submit(request);
    const res = reply.raw;
    let clientGone = false;
    res.once('close', () => {
      if (res.writableFinished) return;
      clientGone = true;
      if (ticket.state !== 'ended') {
        cancelled.inc();
        ticket.cancel('the client disconnected');
      }
    });
    const it = ticket[Symbol.asyncIterator]();

    if (!stream) {
      let content = '';
      let reasoning = '';
      try {
        for (let r = await it.next(); !r.done; r = await it.next()) {
          if (r.value.channel === 'analysis') reasoning += r.value.text;
          else if (r.value.channel !== 'commentary') content += r.value.text;
        }
      } catch (e) {
        if (clientGone) return reply.hijack();
        throw e;
      }
      const o = await ticket.done;
      record(o);
      const finish_reason = finishReason(o.stopReason);
      const u = usage(o.promptTokens, o.completionTokens, o.metrics.cachedTokens);
      if (chat)
        return {
          id,
          object: 'chat.completion',
          created: stamp,
          model,
          choices: [
            {
              index: 0,
              message: { role: 'assistant', content, refusal: null, ...(reasoning ? { reasoning_content: reasoning } : {}) },
              logprobs: null,
              finish_reason,
            },
          ],
          usage: u,
        };
      return {
        id,
        object: 'text_completion',
        created: stamp,
        model,
        choices: [{ index: 0, text: content, logprobs: null, finish_reason }],
        usage: u,
      };
    }

    // Streamed: the status is sent with the first piece, so a request that fails before it
    // (a prompt too long for a chat template's rendering, a model without chat) still gets its 4xx.
    let next: IteratorResult<{ text: string; channel?: string }>;
    try {
      next = await it.next();
    } catch (e) {
      if (clientGone) return reply.hijack();
      throw e;
    }
    reply.hijack();
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // nginx and other proxies pass events on as they come instead of buffering them.
      'x-accel-buffering': 'no',
    });
    const extra = includeUsage ? { usage: null } : {};
    const send = async (data: unknown) => {
      if (!res.write(`data: ${JSON.stringify(data)}\n\n`)) await drained(res);
    };
    const chunk = (delta: Record<string, unknown> | string, finish: 'stop' | 'length' | null) =>
      chat
        ? { id, object, created: stamp, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...extra }
        : { id, object, created: stamp, model, choices: [{ index: 0, text: delta, logprobs: null, finish_reason: finish }], ...extra };
    try {
      if (chat) await send(chunk({ role: 'assistant', content: '' }, null));
      for (; !next.done && !clientGone; next = await it.next()) {
        const d = next.value;
        if (!chat) await send(chunk(d.text, null));
        else if (d.channel === 'analysis') await send(chunk({ reasoning_content: d.text }, null));
        else if (d.channel !== 'commentary') await send(chunk({ content: d.text }, null));
      }
      if (clientGone) return;
      const o = await ticket.done;
      record(o);
      await send(chunk(chat ? {} : '', finishReason(o.stopReason)));
      if (includeUsage)
        await send({
          id,
          object,
          created: stamp,
          model,
          choices: [],
          usage: usage(o.promptTokens, o.completionTokens, o.metrics.cachedTokens),
        });
      res.end('data: [DONE]\n\n');
    } catch (e) {
      if (clientGone) return;
      // Past the status line an error can only be an event; OpenAI's clients raise it as an APIError.
      const err = toServerError(e);
      if (err.code === 'IE_SERVER_INTERNAL') log(`ie: error: ${(e as Error)?.stack ?? String(e)}`);
      res.end(`data: ${JSON.stringify(err.toJSON())}\n\n`);
    }
  }

  app.post('/v1/chat/completions', { schema: { body: CHAT_BODY_SCHEMA } }, async (req, reply) => {
    const body = req.body as ChatBody;
    const { engine, scheduler } = ready();
    checkModel(body.model);
    checkChat(body);
    const messages = body.messages.map((m) => ({ role: m.role, content: messageText(m.content) }));
    // Rendered here as well, to refuse before the request takes a place in the queue: a model with
    // no chat format, a conversation its template refuses, one longer than the context.
    const prompt = engine.chatPrompt(messages);
    if (prompt.ids.length > engine.contextLength)
      throw new ServerError(
        'IE_SERVER_CONTEXT_LENGTH',
        `the conversation is ${prompt.ids.length} tokens in the model's chat format; the model's context holds ${engine.contextLength}`,
        'messages',
      );
    // OpenAI's default max_tokens: as long as the context allows.
    const request: GenerationRequest = { kind: 'chat', messages, options: samplingOf(body, engine.contextLength) };
    return answer(reply, scheduler, request, body.stream === true, body.stream_options?.include_usage === true);
  });

  app.post('/v1/completions', { schema: { body: COMPLETION_BODY_SCHEMA } }, async (req, reply) => {
    const body = req.body as CompletionBody;
    const { engine, scheduler } = ready();
    checkModel(body.model);
    checkCompletion(body);
    const p = body.prompt;
    // Text is tokenized here (BOS where the vocabulary's rules add it, as engine.generate does) to
    // refuse a prompt longer than the context before it takes a place in the queue.
    const ids =
      typeof p === 'string'
        ? engine.tokenize(p, { bos: true })
        : typeof p[0] === 'string'
          ? engine.tokenize(p[0] as string, { bos: true })
          : (p as number[]);
    if (ids.length > engine.contextLength)
      throw new ServerError(
        'IE_SERVER_CONTEXT_LENGTH',
        `the prompt is ${ids.length} tokens; the model's context holds ${engine.contextLength}`,
        'prompt',
      );
    // OpenAI's default for completions is 16 tokens.
    const request: GenerationRequest = { kind: 'completion', prompt: ids, options: samplingOf(body, 16) };
    return answer(reply, scheduler, request, body.stream === true, body.stream_options?.include_usage === true);
  });

  app.post('/v1/embeddings', { schema: { body: EMBEDDINGS_BODY_SCHEMA } }, async (req) => {
    const body = req.body as EmbeddingsBody;
    const { engine, scheduler } = ready();
    checkModel(body.model);
    const inputs = embeddingInputs(body, engine.config.dim);
    // Tokenized here as embed() does (texts with BOS), for the usage and to refuse a long input before it queues.
    const counts = inputs.map((x) => (typeof x === 'string' ? engine.tokenize(x, { bos: true }).length : x.length));
    counts.forEach((n, i) => {
      if (n > engine.contextLength)
        throw new ServerError(
          'IE_SERVER_CONTEXT_LENGTH',
          `input ${i} is ${n} tokens; the model's context holds ${engine.contextLength}`,
          'input',
        );
    });
    let vectors: Float32Array[];
    try {
      vectors = await scheduler.embed(inputs);
    } catch (e) {
      throw e instanceof ServerError ? e : embedError(e);
    }
    const format = body.encoding_format ?? 'float';
    const tokens = counts.reduce((a, n) => a + n, 0);
    return {
      object: 'list',
      data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: encodeEmbedding(v, format) })),
      model: options.modelId,
      usage: { prompt_tokens: tokens, total_tokens: tokens },
    };
  });

  const modelObject = () => ({ id: options.modelId, object: 'model', created, owned_by: 'ie' });
  app.get('/v1/models', async () => ({ object: 'list', data: [modelObject()] }));
  app.get('/v1/models/:id', async (req) => {
    const { id } = req.params as { id: string };
    checkModel(id);
    return modelObject();
  });

  app.get('/health', async (_req, reply) => {
    if (state === 'ready') return { status: 'ok' };
    reply.code(503);
    if (state === 'loading') return { status: 'loading' };
    if (state === 'failed') return { status: 'error', message: (loadError as Error)?.message ?? String(loadError) };
    return { status: 'shutting_down' };
  });

  app.get('/metrics', async (_req, reply) => reply.type(PROMETHEUS_CONTENT_TYPE).send(registry.render()));

  const address = await app.listen({ host, port: options.port ?? 8080 });
  lag.start();
  log(`ie: listening on ${address}`);

  const loaded = (async () => {
    try {
      const e = await options.load();
      if (state !== 'loading') {
        // Closed while loading: nobody will use it.
        await e.dispose();
        return;
      }
      engine = e;
      scheduler = options.scheduler ? options.scheduler(e, { parallel, queue }) : new SerialScheduler(e, { parallel, queue });
      state = 'ready';
      log(`ie: ${options.modelId} loaded; serving`);
    } catch (e) {
      loadError = e;
      if (state === 'loading') state = 'failed';
      throw e;
    }
  })();
  loaded.catch(() => {});

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      state = 'closing';
      const appClosed = app.close();
      await scheduler?.close(graceMs);
      // Streams are over: close the keep-alive connections now idle, and after a second whatever is left.
      app.server.closeIdleConnections();
      const timer = setTimeout(() => app.server.closeAllConnections(), 1000);
      await appClosed;
      clearTimeout(timer);
      await loaded.catch(() => {});
      await engine?.dispose();
      lag.stop();
      state = 'closed';
    })();
    return closing;
  };

  return {
    url: address,
    app,
    get state() {
      return state;
    },
    ready: loaded,
    metrics: registry,
    get engine() {
      return engine;
    },
    close,
  };
}
