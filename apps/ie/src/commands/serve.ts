import { basename, resolve } from 'node:path';
import { Engine } from '@ie/runtime';
import { BatchingScheduler, startServer } from '@ie/server';
import { defineCommand } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { ENGINE_FLAGS, describeEngine, engineOptions } from './engine-flags.js';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1|\[::1\])$/;

export const serve = defineCommand({
  name: 'serve',
  summary: 'serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models, /health, /metrics)',
  args: [
    {
      name: 'MODEL_DIR',
      description: 'an IEBIN model directory or a GGUF file (loaded after the server listens; /health says when it is ready)',
    },
  ],
  flags: {
    host: {
      type: 'string',
      arg: 'HOST',
      default: '127.0.0.1',
      description: 'the address to listen on (another than loopback wants --api-key)',
    },
    port: {
      type: 'number',
      integer: true,
      min: 0,
      max: 65535,
      default: 8080,
      arg: 'PORT',
      short: 'p',
      description: 'the port; 0 picks a free one',
    },
    parallel: {
      type: 'number',
      integer: true,
      min: 1,
      max: 1024,
      default: 1,
      arg: 'N',
      description: 'requests decoded together (N KV slots, batched in one forward step)',
    },
    queue: {
      type: 'number',
      integer: true,
      min: 0,
      max: 1 << 20,
      default: 16,
      arg: 'M',
      description: 'requests waiting beyond those; more get 429 (queue_full, with Retry-After)',
    },
    'api-key': {
      type: 'string',
      arg: 'KEY',
      env: 'IE_API_KEY',
      description: 'require "Authorization: Bearer KEY" on every route but /health (at least 8 characters; the env keeps it out of ps)',
    },
    'model-name': { type: 'string', arg: 'NAME', description: 'the model id clients see', defaultText: "the model directory's name" },
    'body-limit': {
      type: 'number',
      integer: true,
      min: 1024,
      max: 1 << 30,
      default: 1 << 20,
      arg: 'BYTES',
      description: 'largest request body',
    },
    'shutdown-grace': {
      type: 'number',
      integer: true,
      min: 0,
      max: 3600,
      default: 10,
      arg: 'SECONDS',
      description: 'on SIGINT/SIGTERM, how long running streams get to finish',
    },
    ...ENGINE_FLAGS,
  },
  examples: [
    { command: 'ie serve models/tl --port 8080', does: 'on http://127.0.0.1:8080/v1' },
    {
      command: 'IE_API_KEY=sk-local-123 ie serve models/tl --host 0.0.0.0 --parallel 4 -t 8',
      does: 'on every interface, behind a key, four requests batched',
    },
  ],
  exits: ['BAD_INPUT', 'INVALID_MODEL', 'INTERRUPTED', 'TERMINATED'],
  async run(v, [path], io) {
    const host = v.host;
    // IE_API_KEY (the flag's env) keeps the key off the command line (and out of `ps`).
    const apiKey = v['api-key'];
    if (apiKey !== undefined && apiKey.length < 8) throw new CliError('CLI_USAGE', '--api-key must be at least 8 characters');
    const graceS = v['shutdown-grace'];
    const options = engineOptions(v);
    const parallel = v.parallel;
    const server = await startServer({
      // One KV slot per parallel request: they decode together, one forward step for all (continuous
      // batching); and one more that /v1/embeddings borrows, so embeddings never wait for a stream to end.
      load: () => Engine.load(path, { ...options, sequences: parallel + 1 }),
      scheduler: (engine, o) => new BatchingScheduler(engine.model, o),
      modelId: v['model-name'] ?? basename(resolve(path)),
      modelPath: path,
      host,
      port: v.port,
      parallel,
      queue: v.queue,
      apiKey,
      bodyLimit: v['body-limit'],
      shutdownGraceMs: graceS * 1000,
      log: io.err,
    });
    if (!LOOPBACK.test(host) && apiKey === undefined)
      io.err(`ie: note: listening on ${host} without --api-key: whoever reaches this address can use the model`);
    let stopping = false;
    let onSignal: (sig: NodeJS.Signals) => void = () => {};
    const done = new Promise<number>((resolveExit, reject) => {
      onSignal = (sig) => {
        if (stopping) {
          io.err(`ie: ${sig} again: exiting now`);
          process.exit(sig === 'SIGINT' ? EXIT.INTERRUPTED : 143);
        }
        stopping = true;
        io.err(`ie: ${sig}: shutting down (running streams get ${graceS} s to finish; ${sig} again to exit now)`);
        server.close().then(() => resolveExit(EXIT.OK), reject);
      };
      server.ready.then(
        () => {
          const engine = server.engine as Engine;
          for (const n of engine.notices) io.err(`ie: note: ${n}`);
          io.err(`ie: ${describeEngine(engine.info())}; context ${engine.contextLength}; ready at ${server.url}/v1`);
        },
        (e) => {
          // Nothing to serve: stop listening and exit with the load error's code.
          server.close().finally(() => reject(e));
        },
      );
    });
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      return await done;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
});
