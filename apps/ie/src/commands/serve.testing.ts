/** Test helper: a running `ie …` process (ie serve, ie chat) to talk to while it runs. */
import { spawn } from 'node:child_process';
import { IE_CLI } from '@ie/testing';

/** A running `ie …`: its stderr so far, a wait for a line, and its exit. */
export function startIe(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const proc = spawn(process.execPath, [IE_CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let err = '';
  let out = '';
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return {
    proc,
    exited,
    get err() {
      return err;
    },
    get out() {
      return out;
    },
    /** Resolves with the first match of `re` in stderr (or stdout with `where`), rejects after `ms` or if the process ends first. */
    async waitFor(re: RegExp, ms = 30_000, where: 'err' | 'out' = 'err'): Promise<RegExpMatchArray> {
      const end = Date.now() + ms;
      for (;;) {
        const m = (where === 'err' ? err : out).match(re);
        if (m) return m;
        if (proc.exitCode !== null || Date.now() > end) throw new Error(`no ${re} in ${where} (exit ${proc.exitCode}):\n${err}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}
