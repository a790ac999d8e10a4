import { basename, resolve } from 'node:path';
import { Engine } from '@ie/runtime';
import { BatchingScheduler, startServer } from '@ie/server';
import { intFlag, type Command } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { ENGINE_OPTIONS, ENGINE_USAGE, describeEngine, engineOptions } from './engine-flags.js';

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|::1|\[::1\])$/;

export const serve: Command = {
  name: 'serve',
  summary: 'serve a model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models, /health, /metrics)',
  usage: `ie serve MODEL_DIR [--host 127.0.0.1] [--port 8080] [--parallel N] [--queue M] [--api-key KEY] [--model-name NAME] [--body-limit BYTES] [--shutdown-grace SECONDS] ${ENGINE_USAGE}`,
  positionals: [1, 1],
  options: {
    ...ENGINE_OPTIONS,
    host: { type: 'string' },
    port: { type: 'string', short: 'p' },
    parallel: { type: 'string' },
    queue: { type: 'string' },
    'api-key': { type: 'string' },
    'model-name': { type: 'string' },
    'body-limit': { type: 'string' },
    'shutdown-grace': { type: 'string' },
  },
  async run(v, [path], io) {
    const host = (v.host as string | undefined) ?? '127.0.0.1';
    // IE_API_KEY keeps the key off the command line (and out of `ps`).
    const apiKey = (v['api-key'] as string | undefined) ?? (process.env.IE_API_KEY || undefined);
    if (apiKey !== undefined && apiKey.length < 8) throw new CliError('CLI_USAGE', '--api-key must be at least 8 characters');
    const graceS = intFlag(v, 'shutdown-grace', 0, 3600, 10) as number;
    const options = engineOptions(v);
    const parallel = intFlag(v, 'parallel', 1, 1024, 1) as number;
    const server = await startServer({
      // One KV slot per parallel request: they decode together, one forward step for all (continuous batching).
      load: () => Engine.load(path, { ...options, sequences: parallel }),
      scheduler: (engine, o) => new BatchingScheduler(engine.model, o),
      modelId: (v['model-name'] as string | undefined) ?? basename(resolve(path)),
      host,
      port: intFlag(v, 'port', 0, 65535, 8080),
      parallel,
      queue: intFlag(v, 'queue', 0, 1 << 20, 16),
      apiKey,
      bodyLimit: intFlag(v, 'body-limit', 1024, 1 << 30, 1 << 20),
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
};
