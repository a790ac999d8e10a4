/**
 * No writer follows a planted symlink: at the final name rename replaces the link itself, at the
 * temporary names (old predictable ones included) the exclusive create refuses it, and the
 * link's target is never written.
 */
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { exportIebin } from './export-iebin.js';
import { writeGguf } from './gguf-writer.js';
import { writeHfDir } from './hf.js';
import { IebinReader } from './reader.js';
import { createTempFile, discardTemp, makeDirs, removeStaleTemps, writeFileAtomic, writeNewFile } from './safe-write.js';
import { synthModel } from './synth.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-safe-'));

/** A victim file outside the output directory, and a check that it is unchanged. */
function victim(): { path: string; intact: () => void } {
  const path = join(tmp(), 'victim.txt');
  writeFileSync(path, 'precious');
  return { path, intact: () => expect(readFileSync(path, 'utf8')).toBe('precious') };
}

function plant(dir: string, names: string[], target: string): void {
  for (const n of names) symlinkSync(target, join(dir, n));
}

const isLink = (p: string) => lstatSync(p).isSymbolicLink();

describe('safe-write', () => {
  it('writeFileAtomic replaces a symlink at the final name and never writes through it', async () => {
    const v = victim();
    const d = tmp();
    const f = join(d, 'm.json');
    // The old quantize --out temporary name, and the final name.
    plant(d, [`m.json.partial-${process.pid}`, 'm.json'], v.path);
    await writeFileAtomic(f, '{"new":true}');
    v.intact();
    expect(isLink(f)).toBe(false);
    expect(readFileSync(f, 'utf8')).toBe('{"new":true}');
    expect(readdirSync(d).sort()).toEqual(['m.json', `m.json.partial-${process.pid}`]);
  });

  it('creates temporary files exclusively, under unpredictable names, and refuses an existing name', async () => {
    const v = victim();
    const d = tmp();
    const a = await createTempFile(d, 'x.bin');
    const b = await createTempFile(d, 'x.bin');
    await a.handle.close();
    await b.handle.close();
    expect(a.path).not.toBe(b.path);
    for (const p of [a.path, b.path]) expect(p).toMatch(new RegExp(`/\\.x\\.bin\\.partial-${process.pid}-[0-9a-f]{16}$`));
    plant(d, ['planted'], v.path);
    await expect(writeNewFile(join(d, 'planted'), 'evil')).rejects.toMatchObject({ code: 'EEXIST' });
    v.intact();
    await discardTemp(a.path);
    await discardTemp(b.path);
  });

  it('removeStaleTemps removes stale names (links unlinked, not followed) and keeps live ones', async () => {
    const v = victim();
    const d = tmp();
    const live = await createTempFile(d, 'y');
    await live.handle.close();
    plant(d, ['.y.partial-999999999-abc'], v.path);
    writeFileSync(join(d, `.y.partial-${process.pid}-0123456789abcdef`), 'orphan of this process');
    writeFileSync(join(d, `.y.partial-${process.ppid}-0123456789abcdef`), 'a live process');
    writeFileSync(join(d, 'keep.partial-999999999-1'), 'not hidden: not ours');
    const removed = await removeStaleTemps(d);
    expect(removed.sort()).toEqual(['.y.partial-999999999-abc', `.y.partial-${process.pid}-0123456789abcdef`].sort());
    v.intact();
    expect(existsSync(live.path)).toBe(true);
    await discardTemp(live.path);
  });
});

describe('makeDirs', () => {
  it('makes the missing directories top down and returns them deepest first, as a failed writer removes them', async () => {
    const root = tmp();
    expect(await makeDirs(join(root, 'a', 'b', 'c'))).toEqual([join(root, 'a', 'b', 'c'), join(root, 'a', 'b'), join(root, 'a')]);
    expect(lstatSync(join(root, 'a', 'b', 'c')).isDirectory()).toBe(true);
    expect(await makeDirs(join(root, 'a', 'b'))).toEqual([]);
    expect(await makeDirs(`${join(root, 'a', 'b')}/`)).toEqual([]);
  });

  it('fails with the errno where a file stands in the way or the parent refuses a directory', async () => {
    const root = tmp();
    writeFileSync(join(root, 'f'), 'x');
    await expect(makeDirs(join(root, 'f'))).rejects.toMatchObject({ code: 'ENOTDIR', syscall: 'mkdir' });
    await expect(makeDirs(join(root, 'f', 'sub'))).rejects.toMatchObject({ code: 'ENOTDIR' });
    expect(readdirSync(root)).toEqual(['f']);
  });

  // Node 20's recursive mkdir spins forever here (ENOENT from the child, EEXIST from /proc, again).
  it.runIf(existsSync('/proc/self'))('returns at once under /proc, where mkdir of a new name fails with ENOENT', async () => {
    await expect(makeDirs('/proc/ie-no-such-dir/sub')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('every writer ignores planted symlinks', () => {
  it('IebinWriter: links at model.ie.bin, model.ie.json, tokenizer.json and the old partial names', async () => {
    const v = victim();
    const d = tmp();
    const tok = join(tmp(), 'tokenizer.json');
    writeFileSync(tok, '{"model":{"type":"BPE"}}');
    plant(
      d,
      [
        'model.ie.bin',
        'model.ie.json',
        'tokenizer.json',
        `.model.ie.bin.partial-${process.pid}-0`,
        `.model.ie.json.partial-${process.pid}-0`,
        `.tokenizer.json.partial-${process.pid}-0`,
      ],
      v.path,
    );
    const src = synthModel('tiny', { seed: 5 });
    src.tokenizer = { model: 'hf', source: tok } as never;
    await exportIebin(src, d, { converter: 'test' });
    v.intact();
    for (const n of ['model.ie.bin', 'model.ie.json', 'tokenizer.json']) expect(isLink(join(d, n))).toBe(false);
    const r = await IebinReader.open(d);
    expect((await r.verify()).ok).toBe(true);
    await r.close();
  });

  it('writeHfDir: links at config.json.partial, config.json, tokenizer.json and the safetensors names', async () => {
    const v = victim();
    const d = tmp();
    const names = [
      'config.json.partial',
      'config.json',
      'tokenizer.json',
      'model.safetensors',
      `model.safetensors.partial-${process.pid}`,
      'model.safetensors.index.json',
    ];
    plant(d, names, v.path);
    await writeHfDir(synthModel('tiny', { seed: 6 }), d);
    v.intact();
    for (const n of ['config.json', 'tokenizer.json', 'model.safetensors']) expect(isLink(join(d, n))).toBe(false);
    expect(JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')).hidden_size).toBe(synthModel('tiny').config.dim);
    // Nothing of the staging directory is left.
    expect(readdirSync(d).filter((n) => n.startsWith('.ie-staging-'))).toEqual([]);
  });

  it('writeHfDir leaves nothing behind when it fails', async () => {
    const d = tmp();
    const src = synthModel('tiny', { seed: 6 });
    src.tokenizer = { model: 'llama2c', pieces: [], scores: [], max_piece_bytes: 1 } as never;
    await expect(writeHfDir(src, d)).rejects.toMatchObject({ code: 'HF_BAD_TOKENIZER' });
    expect(readdirSync(d)).toEqual([]);
  });

  it('writeGguf: links at the final name and the old partial name', async () => {
    const v = victim();
    const d = tmp();
    mkdirSync(join(d, 'sub'));
    plant(d, ['m.gguf', `.m.gguf.partial-${process.pid}`], v.path);
    await writeGguf(synthModel('tiny', { seed: 7 }), join(d, 'm.gguf'));
    v.intact();
    expect(isLink(join(d, 'm.gguf'))).toBe(false);
    expect(readFileSync(join(d, 'm.gguf')).readUInt32LE(0)).toBe(0x46554747);
  });
});
