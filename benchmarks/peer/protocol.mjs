// The side-by-side workers' protocol: one JSON request per stdin line, one JSON reply per stdout
// line. Requests: {cmd: 'decode', prompt: ids, tokens: n} -> {tokS, tokens}; {cmd: 'prefill',
// ids} -> {tokS}; {cmd: 'logits', ids, vocab} -> {logits: one array per position}; {cmd: 'info'};
// {cmd: 'exit'}. Errors reply {error}.
import { createInterface } from 'node:readline';

export async function serve(handlers) {
  const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
  out({ ready: true, ...(await handlers.info()) });
  for await (const line of createInterface({ input: process.stdin })) {
    const req = JSON.parse(line);
    if (req.cmd === 'exit') break;
    try {
      out(await handlers[req.cmd](req));
    } catch (e) {
      out({ error: String(e?.stack ?? e) });
    }
  }
  await handlers.close?.();
  process.exit(0);
}
