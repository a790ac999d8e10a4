import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GgufError, exportIebin, openGguf, synthModel, writeGguf } from '@ie/format';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Engine } from './engine.js';
import { GgufCacheError, defaultGgufCacheDir, ensureGgufCache, ggufCacheKey, isGgufFile } from './gguf-cache.js';
import { openMapped } from './load.js';

let tmp: string;
let gguf: string;
let converted: string;

async function greedy(path: string): Promise<{ text: string; tokens: number[] }> {
  const e = await Engine.load(path, { threads: 1 });
  try {
    const tokens: number[] = [];
    let text = '';
    for await (const p of e.generate('hello world', { temperature: 0, maxTokens: 8 })) {
      tokens.push(p.token);
      text += p.text;
    }
    return { text, tokens };
  } finally {
    await e.dispose();
  }
}

/** Entries in a cache directory, staging directories included. */
const entries = (dir: string): string[] => readdirSync(dir).sort();

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ie-gguf-cache-'));
  gguf = join(tmp, 'tiny.gguf');
  await writeGguf(synthModel('tiny', { seed: 7 }), gguf, { name: 'test' });
  // What `ie convert --gguf tiny.gguf --out-dir converted` does.
  converted = join(tmp, 'converted');
  const src = await openGguf(gguf);
  try {
    await exportIebin(src, converted, { converter: 'test' });
  } finally {
    await src.close();
  }
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('loading a GGUF file directly', () => {
  it('is recognized by its magic, not its name', async () => {
    const renamed = join(tmp, 'model.bin');
    writeFileSync(renamed, readFileSync(gguf));
    expect(await isGgufFile(renamed)).toBe(true);
    expect(await isGgufFile(gguf)).toBe(true);
    expect(await isGgufFile(converted)).toBe(false);
    expect(await isGgufFile(join(converted, 'model.ie.json'))).toBe(false);
    expect(await isGgufFile(join(tmp, 'missing.gguf'))).toBe(false);
    rmSync(renamed);
  });

  it('the default cache is IE_CACHE_DIR, else XDG_CACHE_HOME/ie, else ~/.cache/ie', () => {
    expect(defaultGgufCacheDir({ IE_CACHE_DIR: '/c/ie', XDG_CACHE_HOME: '/x' })).toBe('/c/ie');
    expect(defaultGgufCacheDir({ XDG_CACHE_HOME: '/x' })).toBe('/x/ie');
    expect(defaultGgufCacheDir({})).toMatch(/[/\\]\.cache[/\\]ie$/);
  });

  it('Engine.load(file.gguf) converts once into the cache and generates what the converted directory generates', async () => {
    const cache = join(tmp, 'cache-engine');
    vi.stubEnv('IE_CACHE_DIR', cache);
    try {
      const want = await greedy(converted);
      expect(want.tokens.length).toBeGreaterThan(0);
      const got = await greedy(gguf);
      expect(got).toEqual(want);
      const first = entries(cache);
      expect(first).toHaveLength(1);
      expect(first[0]).toBe(await ggufCacheKey(gguf));
      const mtime = statSync(join(cache, first[0], 'model.ie.json')).mtimeMs;
      // Loaded again: the same entry, not rewritten.
      expect(await greedy(gguf)).toEqual(want);
      expect(entries(cache)).toEqual(first);
      expect(statSync(join(cache, first[0], 'model.ie.json')).mtimeMs).toBe(mtime);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('Engine.load takes cacheDir and tells in its notices that it converted, then that it reused', async () => {
    const cache = join(tmp, 'cache-option');
    const a = await Engine.load(gguf, { threads: 1, cacheDir: cache });
    await a.dispose();
    expect(a.notices.some((n) => n.includes('converted it to IEBIN') && n.includes(cache))).toBe(true);
    expect(entries(cache)).toHaveLength(1);
    const b = await Engine.load(gguf, { threads: 1, cacheDir: cache });
    await b.dispose();
    expect(b.notices.some((n) => n.includes('loaded its IEBIN conversion cached') && n.includes(cache))).toBe(true);
    expect(entries(cache)).toHaveLength(1);
  });

  it("reports the conversion's progress tensor by tensor, and nothing when the cached conversion is reused", async () => {
    const cache = join(tmp, 'cache-progress');
    const seen: Array<{ tensor: string; index: number; count: number; bytesDone: number; bytesTotal: number }> = [];
    const a = await Engine.load(gguf, { threads: 1, cacheDir: cache, onConvertProgress: (p) => seen.push(p) });
    await a.dispose();
    const src = await openGguf(gguf);
    const names = src.tensors.map((t) => t.name);
    await src.close();
    expect(seen.map((p) => p.tensor)).toEqual(names);
    expect(seen.map((p) => p.index)).toEqual(names.map((_, i) => i));
    for (let i = 1; i < seen.length; i++) expect(seen[i].bytesDone).toBeGreaterThan(seen[i - 1].bytesDone);
    const last = seen[seen.length - 1];
    expect([last.count, last.bytesDone]).toEqual([names.length, last.bytesTotal]);
    const again: unknown[] = [];
    const b = await Engine.load(gguf, { threads: 1, cacheDir: cache, onConvertProgress: (p) => again.push(p) });
    await b.dispose();
    expect(again).toEqual([]);
    await expect(Engine.load(gguf, { cacheDir: cache, onConvertProgress: 3 as never })).rejects.toMatchObject({
      code: 'IE_INVALID_OPTION',
      option: 'onConvertProgress',
    });
  });

  it('reuses a conversion, re-converts a changed file, and says which in a notice', async () => {
    const cache = join(tmp, 'cache-notices');
    const m1 = await openMapped(gguf, { cacheDir: cache });
    try {
      expect(m1.notices).toHaveLength(1);
      expect(m1.notices[0]).toMatch(/tiny\.gguf is GGUF: converted it to IEBIN in [\d.]+ s, cached in .*cache-notices/);
      expect(m1.directory).toBe(join(cache, await ggufCacheKey(gguf)));
      expect(m1.reader.config.vocab_size).toBe(synthModel('tiny', { seed: 7 }).config.vocab_size);
    } finally {
      await m1.close();
    }
    const again = await ensureGgufCache(gguf, { cacheDir: cache });
    expect(again.converted).toBe(false);
    expect(again.notice).toMatch(/loaded its IEBIN conversion cached in/);
    expect(entries(cache)).toEqual([again.key]);

    // A rewritten file (other weights, same size) and a touched one each get their own entry.
    const copy = join(tmp, 'changing.gguf');
    await writeGguf(synthModel('tiny', { seed: 7 }), copy, { name: 'test' });
    const a = await ensureGgufCache(copy, { cacheDir: cache });
    expect(a.converted).toBe(true);
    await writeGguf(synthModel('tiny', { seed: 8 }), copy, { name: 'test' });
    const b = await ensureGgufCache(copy, { cacheDir: cache });
    expect(b.converted).toBe(true);
    expect(b.key).not.toBe(a.key);
    const later = new Date(Date.now() + 60_000);
    utimesSync(copy, later, later);
    const c = await ensureGgufCache(copy, { cacheDir: cache });
    expect(c.converted).toBe(true);
    expect(new Set([a.key, b.key, c.key]).size).toBe(3);
    expect(entries(cache)).toEqual([again.key, a.key, b.key, c.key].sort());
    expect((await ensureGgufCache(copy, { cacheDir: cache })).converted).toBe(false);
  });

  it('an entry that no longer opens is converted again', async () => {
    const cache = join(tmp, 'cache-broken');
    const e1 = await ensureGgufCache(gguf, { cacheDir: cache });
    rmSync(join(e1.dir, 'model.ie.json'));
    const e2 = await ensureGgufCache(gguf, { cacheDir: cache });
    expect(e2.converted).toBe(true);
    expect(e2.dir).toBe(e1.dir);
    expect(entries(cache)).toEqual([e1.key]);
    expect(readdirSync(e2.dir)).toContain('model.ie.json');
  });

  it("a corrupt GGUF file fails with the format package's error and leaves no cache entry", async () => {
    const cache = join(tmp, 'cache-corrupt');
    const bytes = readFileSync(gguf);
    const cut = join(tmp, 'cut.gguf');
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const err = await openMapped(cut, { cacheDir: cache }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GgufError);
    expect((err as GgufError).code).toMatch(/^GGUF_(RANGE_OUT_OF_FILE|TRUNCATED)$/);
    const bad = join(tmp, 'bad.gguf');
    writeFileSync(bad, Buffer.concat([Buffer.from('GGUF'), Buffer.from([3, 0, 0, 0]), Buffer.alloc(8, 0xff)]));
    await expect(Engine.load(bad, { cacheDir: cache })).rejects.toBeInstanceOf(GgufError);
    const named = join(tmp, 'named.gguf');
    writeFileSync(named, 'not a gguf file at all');
    await expect(openMapped(named, { cacheDir: cache })).rejects.toMatchObject({ code: 'GGUF_BAD_MAGIC' });
    expect(() => readdirSync(cache)).toThrow(/ENOENT/);
  });

  it('a cache directory that cannot be written is IE_CACHE_NOT_WRITABLE, naming the file and what to do', async () => {
    const notDir = join(tmp, 'plain-file');
    writeFileSync(notDir, 'x');
    const err = await openMapped(gguf, { cacheDir: join(notDir, 'cache') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GgufCacheError);
    expect(err).toMatchObject({ code: 'IE_CACHE_NOT_WRITABLE', file: gguf, cacheDir: join(notDir, 'cache') });
    expect((err as Error).message).toContain(`ie convert --gguf ${gguf} --out-dir DIR`);
    expect((err as Error).message).toMatch(/ENOTDIR/);
  });
});
