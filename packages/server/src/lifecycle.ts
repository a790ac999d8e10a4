/**
 * The server's life around its model: loading (the server already listens), ready, failed, and the
 * graceful shutdown. One ServingState holds where it is and the engine and scheduler once loaded;
 * /health, the gauges and every route read it.
 */
import type { Engine } from '@ie/runtime';
import type { FastifyInstance } from 'fastify';
import { ServerError } from './errors.js';
import type { EventLoopLag } from './metrics.js';
import { SerialScheduler, type Scheduler } from './scheduler.js';

export type ServerState = 'loading' | 'ready' | 'failed' | 'closing' | 'closed';

export class ServingState {
  state: ServerState = 'loading';
  engine: Engine | undefined;
  scheduler: Scheduler | undefined;
  loadError: unknown;

  /** Closing or closed: new requests are refused. */
  get shuttingDown(): boolean {
    return this.state === 'closing' || this.state === 'closed';
  }

  get loadErrorMessage(): string {
    return (this.loadError as Error)?.message ?? String(this.loadError);
  }

  /** The engine and scheduler, or the ServerError that says why a request cannot have them now. */
  ready(): { engine: Engine; scheduler: Scheduler } {
    if (this.state === 'ready' && this.engine && this.scheduler) return { engine: this.engine, scheduler: this.scheduler };
    if (this.state === 'loading') throw new ServerError('IE_SERVER_LOADING', 'the model is still loading', null, 5);
    if (this.state === 'failed') throw new ServerError('IE_SERVER_LOAD_FAILED', `the model failed to load: ${this.loadErrorMessage}`);
    throw new ServerError('IE_SERVER_SHUTTING_DOWN', 'the server is shutting down', null, 5);
  }
}

export interface LoadOptions {
  load: () => Promise<Engine>;
  modelId: string;
  parallel: number;
  queue: number;
  scheduler?: (engine: Engine, options: { parallel: number; queue: number }) => Scheduler;
  log: (line: string) => void;
}

/** Loads the engine and puts a scheduler over it; resolves when serving, rejects with the load error (handled: nobody need await it). */
export function loadModel(life: ServingState, o: LoadOptions): Promise<void> {
  const { parallel, queue } = o;
  const loaded = (async () => {
    try {
      const e = await o.load();
      if (life.state !== 'loading') {
        // Closed while loading: nobody will use it.
        await e.dispose();
        return;
      }
      life.engine = e;
      life.scheduler = o.scheduler ? o.scheduler(e, { parallel, queue }) : new SerialScheduler(e, { parallel, queue });
      life.state = 'ready';
      o.log(`ie: ${o.modelId} loaded; serving`);
    } catch (e) {
      life.loadError = e;
      if (life.state === 'loading') life.state = 'failed';
      throw e;
    }
  })();
  loaded.catch(() => {});
  return loaded;
}

/**
 * Stops accepting, fails queued requests, lets running streams finish (up to `graceMs`), closes the
 * connections left, waits for a load in progress and disposes the engine.
 */
export async function shutdown(life: ServingState, app: FastifyInstance, graceMs: number, loaded: Promise<void>, lag: EventLoopLag) {
  life.state = 'closing';
  const appClosed = app.close();
  await life.scheduler?.close(graceMs);
  // Streams are over: close the keep-alive connections now idle, and after a second whatever is left.
  app.server.closeIdleConnections();
  const timer = setTimeout(() => app.server.closeAllConnections(), 1000);
  await appClosed;
  clearTimeout(timer);
  await loaded.catch(() => {});
  await life.engine?.dispose();
  lag.stop();
  life.state = 'closed';
}
