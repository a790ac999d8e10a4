/** Server-sent events over a raw Node response, with backpressure. */
import type { ServerResponse } from 'node:http';

/** Waits until `res` can take more (or is gone): a slow client slows its own stream, not the server. */
export function drained(res: ServerResponse): Promise<void> {
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

/** Sends the event-stream status line and headers. */
export function openEventStream(res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    // nginx and other proxies pass events on as they come instead of buffering them.
    'x-accel-buffering': 'no',
  });
}

/** Writes one `data:` event as JSON, resolving once the response can take the next. */
export function eventSender(res: ServerResponse): (data: unknown) => Promise<void> {
  return async (data) => {
    if (!res.write(`data: ${JSON.stringify(data)}\n\n`)) await drained(res);
  };
}
