/**
 * Reading a manifest: JSON → schema validation (ajv, every error) → the checks a schema cannot
 * express (a rule has exactly one pattern, fields that belong to another scheme, regexes that
 * do not compile, ...). Checks that need the model live in resolve.ts.
 */
import { realpath } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { readRegularFile, sha256Bytes } from '@ie/format';
import { Ajv, type ErrorObject } from 'ajv';
import { ManifestError, QuantError, type ManifestProblem } from '../errors.js';
import { compileGlob, compileRegex } from './glob.js';
import { MANIFEST_SCHEMA, type ExpandedManifest, type GateThresholds, type Manifest, type Policy } from './schema.js';

/** Gate thresholds a policy gets for what it does not set (docs/quantization.md explains them). */
export const DEFAULT_GATE: GateThresholds = { min_cosine: 0.98, min_snr_db: 15, max_kl: 0.15, min_top1: 0.8 };

export const DEFAULT_CALIBRATION = { sequence_length: 128, max_sequences: 8 } as const;

let validator: ReturnType<Ajv['compile']> | undefined;
function validate(doc: unknown): ErrorObject[] {
  if (!validator) {
    const ajv = new Ajv({ allErrors: true, discriminator: true, strict: true, strictTypes: false });
    validator = ajv.compile(MANIFEST_SCHEMA);
  }
  return validator(doc) ? [] : [...(validator.errors ?? [])];
}

/** `/rules/2/group_size` → `rules[2].group_size`. */
function jsonPath(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(part) ? `[${part}]` : out ? `.${part}` : part;
  }
  return out || '(root)';
}

function describe(e: ErrorObject): ManifestProblem {
  const at = jsonPath(e.instancePath);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return {
        field: at === '(root)' ? String(p.additionalProperty) : `${at}.${p.additionalProperty}`,
        message: 'is not a manifest field (check the spelling against quant/q4_manifest.schema.json)',
      };
    case 'required':
      return { field: at === '(root)' ? String(p.missingProperty) : `${at}.${p.missingProperty}`, message: 'is required' };
    case 'enum':
      return { field: at, message: `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'const':
      return { field: at, message: `must be ${JSON.stringify(p.allowedValue)}` };
    case 'discriminator':
      return { field: at === '(root)' ? 'kind' : `${at}.kind`, message: 'must be one of "policy", "expanded"' };
    default:
      return { field: at, message: e.message ?? e.keyword };
  }
}

const QUANT_FIELDS = ['group_size', 'mode', 'granularity', 'scale_dtype', 'method', 'allow_padding'] as const;

function policyProblems(p: Policy): ManifestProblem[] {
  const out: ManifestProblem[] = [];
  p.rules.forEach((r, i) => {
    const at = `rules[${i}]`;
    if ((r.match === undefined) === (r.regex === undefined))
      out.push({ field: at, message: 'needs exactly one of "match" (a glob) or "regex"' });
    // Patterns are compiled to linear-time matchers (glob.ts), never handed to RegExp.
    if (r.regex !== undefined) {
      try {
        compileRegex(r.regex);
      } catch (e) {
        out.push({ field: `${at}.regex`, message: `is not a supported pattern: ${(e as Error).message}` });
      }
    }
    if (r.match !== undefined) {
      try {
        compileGlob(r.match);
      } catch (e) {
        out.push({ field: `${at}.match`, message: `is not a supported glob: ${(e as Error).message}` });
      }
    }
    const allowed: readonly string[] =
      r.scheme === 'int4w'
        ? ['group_size', 'mode', 'scale_dtype', 'method', 'allow_padding']
        : r.scheme === 'int8w'
          ? ['group_size', 'granularity', 'scale_dtype', 'method', 'allow_padding']
          : [];
    for (const f of QUANT_FIELDS)
      if (r[f] !== undefined && !allowed.includes(f)) out.push({ field: `${at}.${f}`, message: `does not apply to scheme ${r.scheme}` });
    if (r.scheme === 'int4w' && r.group_size === undefined)
      out.push({ field: `${at}.group_size`, message: 'is required for int4w (32, 64 or 128)' });
    if (r.scheme === 'int8w') {
      if (r.granularity === undefined)
        out.push({ field: `${at}.granularity`, message: 'is required for int8w ("per_row" or "per_group")' });
      if (r.granularity === 'per_group' && r.group_size === undefined)
        out.push({ field: `${at}.group_size`, message: 'is required for per_group int8w' });
      if (r.granularity === 'per_row' && r.group_size !== undefined)
        out.push({ field: `${at}.group_size`, message: 'does not apply to per_row int8w (the group is the row)' });
    }
  });
  const l = p.layout;
  if (l?.pretranspose && l.block_k) out.push({ field: 'layout', message: 'pretranspose and block_k cannot be combined' });
  if (l?.block_k !== undefined && l.block_k % 64 !== 0)
    out.push({ field: 'layout.block_k', message: `must be a multiple of 64 (or 0), got ${l.block_k}` });
  return out;
}

function expandedProblems(m: ExpandedManifest): ManifestProblem[] {
  const out: ManifestProblem[] = [];
  const seen = new Set<string>();
  for (const [key, b64] of Object.entries(m.scales)) {
    const n = Buffer.from(b64, 'base64');
    if (n.length === 0 || n.length % 4 !== 0 || n.toString('base64') !== b64)
      out.push({ field: `scales.${key}`, message: 'must be canonical base64 of little-endian f32 values' });
    else {
      const dv = new DataView(n.buffer, n.byteOffset, n.length);
      for (let i = 0; i < n.length / 4; i++) {
        const v = dv.getFloat32(4 * i, true);
        if (!(Number.isFinite(v) && v > 0)) {
          out.push({ field: `scales.${key}`, message: `value ${i} is ${v}; scales must be finite and positive` });
          break;
        }
      }
    }
  }
  m.tensors.forEach((e, i) => {
    const at = `tensors[${i}]`;
    if (seen.has(e.name)) out.push({ field: `${at}.name`, message: `${e.name} appears twice` });
    seen.add(e.name);
    const quantized = e.scheme === 'int4w' || e.scheme === 'int8w';
    if (quantized) {
      if (e.scale_dtype === undefined) out.push({ field: `${at}.scale_dtype`, message: `is required for ${e.scheme}` });
      // A tensor the source already has quantized is copied: it has no method.
      if (e.method === undefined && (e.source.dtype === 'f32' || e.source.dtype === 'f16' || e.source.dtype === 'bf16'))
        out.push({ field: `${at}.method`, message: `is required for ${e.scheme} from a float source` });
      if (e.scheme === 'int4w' && (e.group_size === undefined || e.mode === undefined))
        out.push({ field: at, message: 'int4w needs group_size and mode' });
      if (e.scheme === 'int8w' && (e.granularity === undefined || (e.granularity === 'per_group') !== (e.group_size !== undefined)))
        out.push({ field: at, message: 'int8w needs granularity, and group_size exactly when per_group' });
      if (e.shape.length !== 2) out.push({ field: `${at}.shape`, message: 'only matrices can be quantized' });
    } else {
      for (const f of ['group_size', 'mode', 'granularity', 'scale_dtype'] as const)
        if (e[f] !== undefined) out.push({ field: `${at}.${f}`, message: `does not apply to ${e.scheme}` });
    }
    if (e.transforms?.length && e.source.dtype !== 'f32' && e.source.dtype !== 'f16' && e.source.dtype !== 'bf16')
      out.push({ field: `${at}.transforms`, message: `${e.name} is ${e.source.dtype} in the source; only float tensors can be rewritten` });
    if (e.layout.block_k % 64 !== 0)
      out.push({ field: `${at}.layout.block_k`, message: `must be a multiple of 64 (or 0), got ${e.layout.block_k}` });
    e.transforms?.forEach((t, j) => {
      const s = m.scales[t.by];
      if ((t.op === 'divide') !== (e.shape.length === 1))
        out.push({
          field: `${at}.transforms[${j}].op`,
          message: `${t.op} applies to ${t.op === 'divide' ? 'vectors' : 'matrices'}; ${e.name} is ${e.shape.length}-D`,
        });
      else if (s === undefined)
        out.push({ field: `${at}.transforms[${j}].by`, message: `names scales ${JSON.stringify(t.by)}, which the manifest does not have` });
      else {
        const len = Buffer.from(s, 'base64').length / 4;
        const want = t.op === 'scale_columns' ? e.shape[e.shape.length - 1] : e.shape[0];
        if (len !== want) out.push({ field: `${at}.transforms[${j}]`, message: `${t.op} by ${t.by} needs ${want} scales, it has ${len}` });
      }
    });
  });
  if (m.status === 'accepted' && (m.gate.failures?.length ?? 0) > 0)
    out.push({ field: 'status', message: 'is "accepted" but gate.failures is not empty' });
  return out;
}

/** The sha256 of a manifest's bytes: what the audit record and the expanded manifest cite. */
export function manifestSha256(text: string | Uint8Array): string {
  return sha256Bytes(typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
}

export interface LoadedManifest {
  manifest: Manifest;
  file: string;
  sha256: string;
}

/** Parses and checks a manifest; throws a ManifestError listing every problem. */
export function parseManifest(text: string, file = '<manifest>'): Manifest {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    // Say where, never what: the message must not quote the file's bytes.
    const pos = /position (\d+)/.exec((e as Error).message);
    throw new ManifestError('QUANT_MANIFEST_INVALID', file, [
      {
        field: '(root)',
        message: `is not JSON (${pos ? `syntax error at character ${pos[1]}` : /Unexpected end/.test((e as Error).message) ? 'it ends early' : 'syntax error'})`,
      },
    ]);
  }
  const errors = validate(doc);
  if (errors.length) {
    // ajv repeats some errors per failing branch; keep each (field, message) once.
    const problems = new Map<string, ManifestProblem>();
    for (const e of errors) {
      const p = describe(e);
      problems.set(`${p.field}\0${p.message}`, p);
    }
    throw new ManifestError('QUANT_MANIFEST_INVALID', file, [...problems.values()]);
  }
  const m = doc as Manifest;
  const problems = m.kind === 'policy' ? policyProblems(m) : expandedProblems(m);
  if (problems.length) throw new ManifestError('QUANT_MANIFEST_INVALID', file, problems);
  return m;
}

/** The most bytes a manifest file may have (expanded manifests carry base64 scales). */
export const MAX_MANIFEST_BYTES = 256 << 20;

export async function readManifest(file: string): Promise<LoadedManifest> {
  // A regular file only (not a FIFO, a device or a /proc file), and never more than the cap.
  const bytes = await readRegularFile(
    file,
    MAX_MANIFEST_BYTES,
    (_code, message) => new ManifestError('QUANT_MANIFEST_INVALID', file, [{ field: '(file)', message }]),
  );
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ManifestError('QUANT_MANIFEST_INVALID', file, [{ field: '(root)', message: 'is not UTF-8 text' }]);
  }
  return { manifest: parseManifest(text, file), file, sha256: manifestSha256(bytes) };
}

/** The most bytes of calibration text read. */
export const MAX_CALIBRATION_BYTES = 256 << 20;

function inside(dir: string, path: string): boolean {
  const r = relative(dir, path);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
}

/**
 * Where a policy's `calibration.text` points: resolved against the manifest's directory, and only
 * if it lies (symlinks resolved) under that directory or the working directory, so a manifest
 * cannot make ie read /etc/shadow or /proc/self/environ. A path given on the command line
 * (`--calib`) is not limited this way: pass it to {@link readCalibrationText} directly.
 */
export async function manifestCalibrationPath(manifestFile: string, text: string, cwd = process.cwd()): Promise<string> {
  const dir = dirname(resolve(manifestFile));
  const path = resolve(dir, text);
  const fail = (why: string): never => {
    throw new QuantError(
      'QUANT_CALIBRATION',
      `${manifestFile}: calibration.text ${why}; pass --calib FILE to use a file elsewhere`,
      'calibration.text',
    );
  };
  let real: string;
  try {
    real = await realpath(path);
  } catch (e) {
    return fail(`names ${path}, which cannot be read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const roots = await Promise.all([dir, resolve(cwd)].map((d) => realpath(d).catch(() => d)));
  if (!roots.some((r) => inside(r, real))) fail(`names ${path}, outside the manifest's directory and the working directory`);
  return path;
}

/** Reads calibration text: a regular file (not a FIFO, device or /proc file) of at most MAX_CALIBRATION_BYTES, UTF-8. */
export async function readCalibrationText(file: string): Promise<string> {
  const bytes = await readRegularFile(
    file,
    MAX_CALIBRATION_BYTES,
    (_code, message) => new QuantError('QUANT_CALIBRATION', `${file} ${message}; pass --calib FILE with a UTF-8 text`),
  );
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new QuantError('QUANT_CALIBRATION', `${file} is not UTF-8 text; pass --calib FILE with a UTF-8 text`);
  }
}

/** The thresholds a policy's gate resolves to. */
export function gateThresholds(p: Policy): GateThresholds {
  return { ...DEFAULT_GATE, ...(p.gate ?? {}) };
}
