/**
 * Safe writes: the one way every ie writer (IEBIN, GGUF, Hugging Face directories, manifests)
 * puts a file on disk. New data goes to a temporary file created with O_CREAT|O_EXCL|O_NOFOLLOW
 * under an unpredictable name (`.<final>.partial-<pid>-<16 random hex>`) in the target's own
 * directory, so a symlink planted at any name is never followed: at a temporary name the
 * create fails and another name is drawn; at the final name rename(2) replaces the link itself,
 * never its target. Files are fsynced before the rename and the directory after it.
 */
import { constants, unlinkSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';

/** Temporary files and staging directories this process is still writing, by absolute path (shared by every copy of this module). */
const LIVE: Set<string> = ((globalThis as Record<symbol, unknown>)[Symbol.for('@ie/format.liveTemps')] ??=
  new Set<string>()) as Set<string>;

const NOFOLLOW = constants.O_NOFOLLOW ?? 0;
const CREATE_FLAGS = constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY | NOFOLLOW;
/** `.<final>.partial-<pid>-<id>` (id: random hex now, a counter in older versions) and staging directories. */
const TEMP_RE = /^\.(?:.+\.partial|ie-staging)-(\d+)-[0-9A-Za-z]+$/;

/**
 * `mkdir -p`: creates `dir` and its missing parents, returning the directories it made, deepest
 * first (the order a failed writer removes them in; empty when `dir` existed). Node 20's own
 * recursive mkdir loops forever where a mkdir fails with ENOENT under a parent that exists (under
 * /proc it retries the parent, gets EEXIST, and starts again); here every missing directory is made
 * once, top down, and the first failure is thrown (ENOENT, EACCES, ENOTDIR, EEXIST for a file in
 * the way), so the caller reports it.
 */
export async function makeDirs(dir: string): Promise<string[]> {
  const missing: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    let st: Awaited<ReturnType<typeof stat>> | undefined;
    try {
      st = await stat(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (st) {
      if (!st.isDirectory())
        throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}' (${d} is not a directory)`), {
          code: 'ENOTDIR',
          syscall: 'mkdir',
          path: d,
        });
      break;
    }
    missing.push(d);
    if (dirname(d) === d) break;
  }
  for (let i = missing.length - 1; i >= 0; i--) {
    try {
      await mkdir(missing[i]);
    } catch (e) {
      // Made by someone else meanwhile: fine while it is a directory.
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || !(await stat(missing[i])).isDirectory()) throw e;
    }
  }
  return missing;
}

/** 16 hex digits from the system's CSPRNG. */
export function randomId(): string {
  return randomBytes(8).toString('hex');
}

/** The temporary name used for `final` (a base name) by this process. */
export function tempName(final: string): string {
  return `.${final}.partial-${process.pid}-${randomId()}`;
}

export interface TempFile {
  path: string;
  handle: FileHandle;
}

/**
 * Creates a new empty file `dir/.<final>.partial-<pid>-<random>` for writing, exclusively and
 * without following symlinks; draws another name if one exists. The path stays registered as
 * live (not removed by {@link removeStaleTemps}) until {@link commitRename} or {@link discardTemp}.
 */
export async function createTempFile(dir: string, final: string, mode = 0o666): Promise<TempFile> {
  for (let attempt = 0; ; attempt++) {
    const path = join(dir, tempName(final));
    try {
      const handle = await open(path, CREATE_FLAGS, mode);
      LIVE.add(path);
      return { path, handle };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 16) throw e;
    }
  }
}

/** Creates `path` (which must not exist, symlinks included), writes `data`, fsyncs and closes it. */
export async function writeNewFile(path: string, data: string | Uint8Array, mode = 0o666): Promise<void> {
  const fh = await open(path, CREATE_FLAGS, mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsyncs an existing regular file without following a symlink. */
export async function syncFile(path: string): Promise<void> {
  const fh = await open(path, constants.O_RDONLY | NOFOLLOW);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Renames `from` over `to` (a symlink at `to` is replaced, never followed) and forgets `from` as a live temp. */
export async function commitRename(from: string, to: string): Promise<void> {
  await rename(from, to);
  LIVE.delete(from);
}

/** Removes a temporary file or staging directory (if still there) and forgets it. */
export async function discardTemp(path: string): Promise<void> {
  await rm(path, { force: true, recursive: true }).catch(() => undefined);
  LIVE.delete(path);
}

/** Forgets `path` as live without touching it (a writer that died there: its files are now stale). */
export function forgetTemp(path: string): void {
  LIVE.delete(path);
}

/** Synchronous {@link discardTemp} (files only), for signal and exit handlers. */
export function discardTempSync(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
  LIVE.delete(path);
}

/** Marks a file this process is writing under a name of this module's scheme as live (see {@link removeStaleTemps}). */
export function markLive(path: string): void {
  LIVE.add(path);
}

/** fsyncs a directory so the renames in it are durable; a no-op where directories cannot be opened (Windows). */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(dir, constants.O_RDONLY | (constants.O_DIRECTORY ?? 0));
  } catch {
    return;
  }
  try {
    await fh.sync().catch(() => undefined);
  } finally {
    await fh.close();
  }
}

/** A fresh private directory `dir/.ie-staging-<pid>-<random>` (mode 0700) to write files into before renaming them into `dir`. */
export async function createStagingDir(dir: string): Promise<string> {
  const path = await mkdtemp(join(dir, `.ie-staging-${process.pid}-`));
  LIVE.add(path);
  return path;
}

/**
 * Writes `data` to `path` so that readers see the old file or the new one, never part of one,
 * and a symlink at `path` or at any temporary name is never followed.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o666): Promise<void> {
  const dir = dirname(path);
  const tmp = await createTempFile(dir, basename(path), mode);
  try {
    try {
      await tmp.handle.writeFile(data);
      await tmp.handle.sync();
    } finally {
      await tmp.handle.close();
    }
    await commitRename(tmp.path, path);
  } catch (e) {
    await discardTemp(tmp.path);
    throw e;
  }
  await fsyncDir(dir);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether a file or staging directory named by this module's scheme (with the writer's pid) belongs to no live writer. */
export function isStaleOwned(path: string, pid: number): boolean {
  return pid === process.pid ? !LIVE.has(path) : !pidAlive(pid);
}

/**
 * Removes temporary files (`.<name>.partial-<pid>-<id>`) and staging directories left in `dir`
 * by writers that are gone: another process that no longer exists, or this process when no
 * writer of it still holds the name. Symlinks with such names are removed, never followed.
 */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = TEMP_RE.exec(n);
    if (!m) continue;
    const p = join(dir, n);
    if (!isStaleOwned(p, Number(m[1]))) continue;
    try {
      const st = await lstat(p);
      if (st.isDirectory()) await rm(p, { recursive: true, force: true });
      else await unlink(p);
      removed.push(n);
    } catch {
      /* gone or not ours to remove */
    }
  }
  return removed;
}
