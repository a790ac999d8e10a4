/**
 * A seeded property test of the whole public surface: every exported function and method is
 * called with random arguments (hostile numbers, wrong types, detached, shared and resizable
 * buffers, spoofed and disposed objects, random programs that are then run), and the only
 * acceptable outcomes are a result or a KernelError. Under the sanitizer build
 * (`pnpm test:asan`) any memory error aborts the worker and fails the run.
 *
 * IE_FUZZ_SEED picks the seed (default fixed), IE_FUZZ_MS the time budget (default 3000 ms;
 * `pnpm fuzz:nightly` raises both under the sanitizer build), IE_FUZZ_MIN_CALLS the number of
 * calls the run must reach (default 10,000).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeMatrix } from '../test/helpers.js';
import { loadAddon } from './addon.js';
import {
  KERNEL_ERROR_CODES,
  KernelContext,
  KernelError,
  MappedFile,
  matrixByteSize,
  checkContextOptions,
  WeightMatrix,
  type MatrixSpec,
  type Program,
} from './index.js';

const SEED = Number(process.env.IE_FUZZ_SEED ?? 20261101);
const BUDGET_MS = Number(process.env.IE_FUZZ_MS ?? 3000);
const MIN_CALLS = Number(process.env.IE_FUZZ_MIN_CALLS ?? 10000);

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const resizable = (n: number, max: number): ArrayBuffer =>
  new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer)(n, { maxByteLength: max });
const ctx = KernelContext.create({ threads: 2 });
const closedCtx = KernelContext.create({ threads: 1 });
closedCtx.close();
afterAll(() => ctx.close());

describe('property: random calls into @ie/kernels give a result or a KernelError, never a crash', () => {
  // Long because every generator below draws from one seeded stream and one set of fixtures: split, each would take them all as arguments.
  it(`survives a seeded storm of hostile calls (seed ${SEED}, ${BUDGET_MS} ms)`, async () => {
    const rnd = mulberry32(SEED);
    const int = (n: number) => Math.floor(rnd() * n);
    const pick = <T>(a: readonly T[]): T => a[int(a.length)];

    const dir = mkdtempSync(join(tmpdir(), 'ie-kfuzz-'));
    const file = join(dir, 'f.bin');
    const seedMatrix = makeMatrix({ dtype: 'f32' }, 16, 32, 1);
    writeFileSync(file, seedMatrix.bytes);
    writeFileSync(join(dir, 'empty.bin'), new Uint8Array(0));
    const mappings: MappedFile[] = [ctx.mapFile(file), ctx.mapFile(file, { offset: 64, length: 1000 })];
    const closedMapping = ctx.mapFile(file);
    const scratchMemory = ctx.allocate(4 * 1024 * 1024);
    closedMapping.close();
    mappings.push(closedMapping);

    const specs: MatrixSpec[] = [
      seedMatrix.spec,
      makeMatrix({ dtype: 'f16' }, 8, 64, 2).spec,
      makeMatrix({ dtype: 'q4', group: 32 }, 8, 64, 3).spec,
      makeMatrix({ dtype: 'i8', group: 'row' }, 8, 32, 4).spec,
    ];
    const matrices: WeightMatrix[] = [
      ctx.matrix(seedMatrix.spec, seedMatrix.bytes),
      ctx.matrix(seedMatrix.spec, mappings[0].view(0, seedMatrix.bytes.length), mappings[0]),
      ...[
        makeMatrix({ dtype: 'f16' }, 8, 64, 2),
        makeMatrix({ dtype: 'q4', group: 32 }, 8, 64, 3),
        makeMatrix({ dtype: 'i8', group: 'row' }, 8, 32, 4),
        makeMatrix({ dtype: 'f32' }, 32, 32, 5),
      ].map((m) => ctx.matrix(m.spec, m.bytes)),
    ];
    const disposed = ctx.matrix(seedMatrix.spec, seedMatrix.bytes.slice());
    disposed.dispose();
    matrices.push(disposed);
    // A WeightMatrix whose bytes get transferred away.
    const stolen = seedMatrix.bytes.slice();
    matrices.push(ctx.matrix(seedMatrix.spec, stolen));
    structuredClone(stolen.buffer, { transfer: [stolen.buffer] });

    const numbers = [
      0,
      1,
      2,
      3,
      4,
      7,
      8,
      16,
      31,
      32,
      33,
      64,
      -1,
      -2,
      0.5,
      1.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      2 ** 16,
      2 ** 24,
      2 ** 31,
      2 ** 32,
      2 ** 53,
      2 ** 61,
      -(2 ** 61),
      2 ** 64,
      1e-6,
      -0,
    ];
    const num = (): number => (rnd() < 0.6 ? int(70) : pick(numbers));
    const sizes = [0, 1, 2, 3, 4, 8, 16, 31, 32, 64, 128, 256, 1024, 4096];
    const typed = (): unknown => {
      const n = pick(sizes);
      switch (int(12)) {
        case 0:
          return new Uint16Array(n);
        case 1:
          return new Int32Array(n);
        case 2:
          return new Uint8Array(n);
        case 3:
          return new Float32Array(new SharedArrayBuffer(n * 4));
        case 4:
          return new Float32Array(resizable(n * 4, n * 8 + 8));
        case 5: {
          const f = new Float32Array(n);
          structuredClone(f.buffer, { transfer: [f.buffer] });
          return f;
        }
        case 6:
          return new Float32Array(n + 8).subarray(int(8));
        case 7:
          return new Float64Array(n);
        case 8:
          return new DataView(new ArrayBuffer(n));
        default:
          return Float32Array.from({ length: n }, () => rnd() * 2 - 1);
      }
    };
    const spoofs = (): unknown =>
      pick([
        {},
        [],
        { native: {} },
        Object.setPrototypeOf({}, WeightMatrix.prototype),
        Object.setPrototypeOf({}, MappedFile.prototype),
        Object.create(null),
        () => 0,
        new Proxy({}, {}),
      ]);
    const viewOf = (): unknown =>
      rnd() < 0.85 ? [int(4), rnd() < 0.7 ? int(64) : num(), rnd() < 0.5 ? pick([0, 8, 16, 32]) : num()] : value(1);
    function value(depth = 0): unknown {
      switch (int(depth > 2 ? 7 : 10)) {
        case 0:
        case 1:
          return num();
        case 2:
          return typed();
        case 3:
          return pick([
            undefined,
            null,
            true,
            false,
            '',
            'f32',
            'int8',
            'adjacent',
            'rotate_half',
            'normal',
            'willneed',
            'bogus',
            file,
            join(dir, 'empty.bin'),
            join(dir, 'missing'),
            '/dev/null',
            10n,
          ]);
        case 4:
          return pick(matrices);
        case 5:
          return pick(mappings);
        case 6:
          return spoofs();
        case 7:
          return [value(depth + 1), value(depth + 1), value(depth + 1)];
        case 8:
          return randomObject(depth + 1);
        default:
          return Float32Array.from({ length: pick(sizes) }, () => rnd());
      }
    }
    const KEYS = [
      'q',
      'k',
      'v',
      'out',
      'nHeads',
      'nKvHeads',
      'headDim',
      'pos0',
      'nQueries',
      'kvStride',
      'window',
      'sinks',
      'scale',
      'dtype',
      'shape',
      'layout',
      'quant',
      'offset',
      'length',
      'advice',
      'activations',
      'threads',
      'isa',
    ];
    function randomObject(depth: number): Record<string, unknown> {
      const o: Record<string, unknown> = {};
      for (let i = int(8); i > 0; i--) o[pick(KEYS)] = value(depth);
      return o;
    }
    const f32 = (n: number) => (rnd() < 0.8 ? Float32Array.from({ length: n }, () => rnd() - 0.5) : value());
    const anyMatrix = () => (rnd() < 0.85 ? pick(matrices) : value());

    // Random, mostly well-formed, attention arguments.
    function attentionArgs(): unknown {
      const kv = pick([1, 2, 4]);
      const H = kv * pick([1, 2]);
      const hd = pick([2, 4, 8, 16]);
      const nq = pick([1, 2, 3]);
      const pos0 = int(6);
      const stride = kv * hd + pick([0, 0, 4]);
      const cache = (pos0 + nq) * stride;
      const a: Record<string, unknown> = {
        q: f32(nq * H * hd),
        k: new Float32Array(cache),
        v: new Float32Array(cache),
        out: new Float32Array(nq * H * hd),
        nHeads: H,
        nKvHeads: kv,
        headDim: hd,
        pos0,
        nQueries: nq,
        kvStride: stride,
        window: int(4),
      };
      if (rnd() < 0.3) a.sinks = new Float32Array(H);
      if (rnd() < 0.4) a[pick(Object.keys(a))] = value();
      if (rnd() < 0.2) delete a[pick(Object.keys(a))];
      return a;
    }

    // Random programs over four buffers: many compile, and then they are run.
    const OPS = ['embed', 'rmsnorm', 'matmul', 'add', 'swiglu', 'rope', 'store', 'attention', 'argmax', 'moe', 'gather', 'tap'];
    function randomOp(): Record<string, unknown> {
      const op = rnd() < 0.95 ? pick(OPS) : value();
      const o: Record<string, unknown> = { op };
      const small = () => (rnd() < 0.85 ? pick([1, 2, 4, 8, 16, 32]) : num());
      const slot = () => (rnd() < 0.8 ? int(4) : num());
      for (const key of [
        'x',
        'weight',
        'out',
        'a',
        'b',
        'gate',
        'up',
        'cos',
        'sin',
        'cache',
        'q',
        'k',
        'v',
        'router',
        'gateBias',
        'upBias',
        'downBias',
      ])
        if (rnd() < 0.7) o[key] = viewOf();
      o.n = small();
      o.heads = small();
      o.kvHeads = small();
      o.headDim = small();
      o.capacity = small();
      if (rnd() < 0.2) o.positions = small();
      o.eps = 1e-5;
      o.topK = small();
      o.limit = 7;
      o.alpha = 1.7;
      o.style = pick(['adjacent', 'rotate_half']);
      o.kvType = pick(['f32', 'f16']);
      for (const key of ['mSlot', 'posSlot', 'idsSlot', 'outSlot', 'rowsSlot']) if (rnd() < 0.8) o[key] = slot();
      if (rnd() < 0.8) o.matrix = anyMatrix();
      if (op === 'moe') {
        const E = pick([1, 2, 3]);
        const m = pick(matrices);
        o.gate = Array.from({ length: E }, () => (rnd() < 0.9 ? m : anyMatrix()));
        o.up = Array.from({ length: E }, () => (rnd() < 0.9 ? m : anyMatrix()));
        o.down = Array.from({ length: E }, () => (rnd() < 0.9 ? m : anyMatrix()));
        o.scratch = rnd() < 0.9 ? { x: viewOf(), gate: viewOf(), up: viewOf(), y: viewOf() } : value();
      }
      if (rnd() < 0.1) o[pick(Object.keys(o))] = value();
      return o;
    }
    // Mostly well-formed ops over buffers 0-2 (f32, 4096) and 3 (f16 bits, 4096), so that many
    // programs compile and then run with random params; one field is sometimes made hostile.
    function plausibleOp(maxRows: number): Record<string, unknown> {
      const w = pick(matrices.slice(0, 6));
      const K = w.cols;
      const N = w.rows;
      const v = (width: number, rows = maxRows, b = int(3)): [number, number, number] => {
        const stride = rows > 1 || rnd() < 0.5 ? width : pick([0, width]);
        return [b, int(Math.max(1, 4096 - (rows - 1) * stride - width + 1)), stride];
      };
      const n = pick([1, 4, 16, 32, 64]);
      const hd = pick([2, 4, 8, 16]);
      const kvh = pick([1, 2]);
      const heads = kvh * pick([1, 2]);
      const cap = pick([1, 4, 8]);
      const kvType = pick(['f32', 'f16'] as const);
      const cb = kvType === 'f16' ? 3 : int(3);
      const op: Record<string, unknown> = pick([
        { op: 'add', a: v(n), b: v(n), out: v(n), n, mSlot: 0 },
        { op: 'tap', x: v(n), out: v(n), n, mSlot: 0 },
        { op: 'swiglu', gate: v(n), up: v(n), out: v(n), n, mSlot: 0 },
        { op: 'rmsnorm', x: v(n), weight: v(n, 1), out: v(n), n, eps: 1e-5, mSlot: 0 },
        { op: 'matmul', matrix: w, x: [int(3), int(100), K], out: [int(3), int(100), N], mSlot: 0, lastRowOnly: rnd() < 0.3 },
        { op: 'argmax', x: v(n, 1), n, outSlot: 1 },
        { op: 'embed', matrix: w, out: [int(3), int(100), K], idsSlot: 2, mSlot: 0 },
        {
          op: 'rope',
          x: v(heads * hd),
          cos: v(cap * (hd / 2), 1),
          sin: v(cap * (hd / 2), 1),
          heads,
          headDim: hd,
          style: pick(['adjacent', 'rotate_half']),
          capacity: cap,
          posSlot: 1,
          mSlot: 0,
        },
        { op: 'store', x: v(kvh * hd), cache: v(kvh * hd, cap, cb), n: kvh * hd, kvType, capacity: cap, posSlot: 1, mSlot: 0 },
        {
          op: 'attention',
          q: v(heads * hd),
          k: v(kvh * hd, cap, cb),
          v: [cb, 0, 0],
          out: v(heads * hd),
          heads,
          kvHeads: kvh,
          headDim: hd,
          kvType,
          capacity: cap,
          posSlot: 1,
          mSlot: 0,
          window: int(3),
        },
      ]);
      if (op.op === 'attention') op.v = [cb, (op.k as number[])[1], (op.k as number[])[2]];
      // A ring cache: positions beyond capacity (refused where the window or capacity is too small).
      if ((op.op === 'store' || op.op === 'attention') && rnd() < 0.3) op.positions = cap + int(40);
      if (rnd() < 0.15) op[pick(Object.keys(op))] = rnd() < 0.5 ? num() : value();
      return op;
    }
    const programs: Program[] = [];
    function randomProgram(): unknown {
      const maxRows = rnd() < 0.9 ? pick([1, 2, 4]) : num();
      if (rnd() < 0.7) {
        const buffers = [new Float32Array(4096), new Float32Array(4096), new Float32Array(4096), new Uint16Array(4096)];
        return {
          buffers,
          params: new Int32Array(4),
          maxRows,
          ops: Array.from({ length: 1 + int(3) }, () =>
            plausibleOp(typeof maxRows === 'number' && maxRows >= 1 && maxRows <= 4 ? maxRows : 1),
          ),
        };
      }
      const buffers = Array.from({ length: 4 }, () =>
        rnd() < 0.85
          ? rnd() < 0.8
            ? new Float32Array(pick([16, 64, 256, 1024, 4096]))
            : new Uint16Array(pick([64, 1024, 4096]))
          : typed(),
      );
      const params = rnd() < 0.9 ? new Int32Array(4) : value();
      const spec = { buffers: rnd() < 0.95 ? buffers : value(), params, maxRows, ops: Array.from({ length: 1 + int(3) }, randomOp) };
      return rnd() < 0.97 ? spec : value();
    }
    const paramsOf = new WeakMap<Program, Int32Array>();
    async function runProgram(p: Program): Promise<void> {
      const params = paramsOf.get(p);
      // Rows, position, token id: mostly in range, sometimes hostile (the run must refuse those).
      if (params)
        for (let i = 0; i < params.length; i++)
          params[i] = rnd() < 0.85 ? int(i === 2 ? 16 : 5) : pick([-1, 2 ** 31 - 1, -(2 ** 31), 4096, 65536, 1 << 24]);
      if (rnd() < 0.5) p.run();
      else await p.runAsync();
    }

    // Every call: [description, function]. Sync throws and async rejections are both checked.
    const calls: Array<[string, () => unknown]> = [
      [
        'gemv',
        () =>
          ctx.gemv(
            anyMatrix() as WeightMatrix,
            f32(64) as Float32Array,
            f32(64) as Float32Array,
            (rnd() < 0.8 ? { activations: pick(['f32', 'int8']) } : value()) as never,
          ),
      ],
      [
        'gemm',
        () =>
          ctx.gemm(anyMatrix() as WeightMatrix, f32(256) as Float32Array, rnd() < 0.7 ? pick([1, 2, 4]) : num(), f32(256) as Float32Array),
      ],
      [
        'gemmAsync',
        () =>
          ctx.gemmAsync(
            anyMatrix() as WeightMatrix,
            f32(256) as Float32Array,
            rnd() < 0.7 ? pick([1, 2, 4]) : num(),
            f32(256) as Float32Array,
          ),
      ],
      ['row', () => ctx.row(anyMatrix() as WeightMatrix, num(), f32(64) as Float32Array)],
      [
        'rmsnorm',
        () =>
          ctx.rmsnorm(
            f32(32) as Float32Array,
            f32(pick([16, 32, 48])) as Float32Array,
            rnd() < 0.7 ? 1e-5 : num(),
            f32(32) as Float32Array,
          ),
      ],
      ['softmax', () => ctx.softmax(f32(32) as Float32Array, rnd() < 0.5 ? undefined : num())],
      [
        'rope',
        () =>
          ctx.rope(
            f32(64) as Float32Array,
            rnd() < 0.6 ? pick([1, 2, 4]) : num(),
            rnd() < 0.6 ? pick([2, 4, 8, 16]) : num(),
            f32(8) as Float32Array,
            f32(8) as Float32Array,
            pick(['adjacent', 'rotate_half', value()]) as never,
          ),
      ],
      [
        'swiglu',
        () => ctx.swiglu(f32(32) as Float32Array, f32(32) as Float32Array, f32(32) as Float32Array, rnd() < 0.5 ? undefined : num()),
      ],
      ['add', () => ctx.add(f32(32) as Float32Array, f32(32) as Float32Array, f32(32) as Float32Array, rnd() < 0.5 ? undefined : num())],
      ['scale', () => ctx.scale(f32(32) as Float32Array, num(), rnd() < 0.5 ? undefined : num())],
      ['argmax', () => ctx.argmax(f32(32) as Float32Array, rnd() < 0.5 ? undefined : num())],
      ['dot', () => ctx.dot(f32(32) as Float32Array, f32(32) as Float32Array, rnd() < 0.5 ? undefined : num())],
      [
        'f32ToF16',
        () =>
          ctx.f32ToF16(
            f32(32) as Float32Array,
            (rnd() < 0.7 ? new Uint16Array(32) : value()) as Uint16Array,
            rnd() < 0.5 ? undefined : num(),
          ),
      ],
      [
        'f16ToF32',
        () =>
          ctx.f16ToF32(
            (rnd() < 0.7 ? new Uint16Array(32) : value()) as Uint16Array,
            f32(32) as Float32Array,
            rnd() < 0.5 ? undefined : num(),
          ),
      ],
      ['attention', () => ctx.attention((rnd() < 0.85 ? attentionArgs() : value()) as never)],
      [
        'matrix',
        () =>
          ctx.matrix(
            (rnd() < 0.7 ? pick(specs) : value()) as MatrixSpec,
            (rnd() < 0.5 ? seedMatrix.bytes : value()) as Uint8Array,
            (rnd() < 0.7 ? undefined : value()) as MappedFile,
          ),
      ],
      ['matrixByteSize', () => matrixByteSize((rnd() < 0.5 ? { ...pick(specs), shape: [num(), num()] } : value()) as MatrixSpec)],
      [
        'mapFile',
        () =>
          ctx.mapFile(
            pick([file, file, join(dir, 'empty.bin'), join(dir, 'missing'), value()]) as string,
            (rnd() < 0.5
              ? { offset: num(), length: rnd() < 0.5 ? undefined : num(), advice: pick(['normal', 'random', 'bogus']) }
              : value()) as never,
          ),
      ],
      ['mapping.view', () => (pick(mappings) as MappedFile).view(num(), num())],
      [
        'raw mapFileOver',
        () =>
          (
            pick([scratchMemory, scratchMemory, closedMapping]) as unknown as { native: { mapFileOver: (...a: unknown[]) => void } }
          ).native.mapFileOver(
            pick([file, join(dir, 'empty.bin'), join(dir, 'missing'), value()]),
            rnd() < 0.5 ? pick([0, 4096, 8192]) : num(),
            rnd() < 0.5 ? pick([0, 4096, 2 * 1024 * 1024]) : num(),
            rnd() < 0.5 ? pick([4096, 8192]) : num(),
          ),
      ],
      [
        'loadFile mapped',
        () =>
          ctx.loadFile(file, { mapped: (rnd() < 0.5 ? [{ offset: int(8192), length: num() }] : value()) as never }).then((m) => m.close()),
      ],
      ['mapping.bytes', () => (pick(mappings) as MappedFile).bytes[int(4)]],
      ['numaBind', () => ctx.numaBind(value() as MappedFile)],
      [
        'touch',
        () =>
          ctx.touch(
            (rnd() < 0.7 ? pick(mappings) : value()) as MappedFile,
            int(4096),
            rnd() < 0.7 ? pick([1, 64, 256]) : num(),
            rnd() < 0.7 ? int(5000) : num(),
          ),
      ],
      [
        'readBandwidth',
        () => ctx.readBandwidth((rnd() < 0.5 ? new Uint8Array(pick([0, 64, 128, 4096])) : value()) as Uint8Array, rnd() < 0.8 ? 1 : num()),
      ],
      ['checkContextOptions', () => checkContextOptions(value() as never)],
      ['closed context', () => closedCtx.gemv(pick(matrices), new Float32Array(64), new Float32Array(64))],
      ['dispose', () => (rnd() < 0.02 ? pick(matrices).dispose() : undefined)],
      [
        'compile+run',
        async () => {
          const spec = randomProgram() as { params?: unknown };
          const p = ctx.compile(spec as never);
          programs.push(p);
          if (spec.params instanceof Int32Array) paramsOf.set(p, spec.params);
          await runProgram(p);
        },
      ],
      [
        'rerun',
        async () => {
          if (programs.length) await runProgram(pick(programs));
        },
      ],
    ];

    // The raw binding (what a caller reaching past the TypeScript checks gets): coded errors only.
    const rawCtx = (ctx as unknown as { native: Record<string, (...a: unknown[]) => unknown> }).native;
    const addon = loadAddon();
    const rawNames = [
      'matrix',
      'gemv',
      'gemm',
      'gemmAsync',
      'row',
      'rmsnorm',
      'softmax',
      'rope',
      'swiglu',
      'add',
      'scale',
      'argmax',
      'dot',
      'f32ToF16',
      'f16ToF32',
      'attention',
      'mapFile',
      'numaBind',
      'compile',
    ];
    const rawArg = () => {
      const v = value();
      return v instanceof WeightMatrix || v instanceof MappedFile ? (v as unknown as { native: unknown }).native : v;
    };
    calls.push(['raw', () => rawCtx[pick(rawNames)].apply(rawCtx, Array.from({ length: int(6) }, rawArg))]);
    calls.push(['raw matrixBytes', () => addon.matrixBytes(rawArg() as never)]);

    const failures: string[] = [];
    let n = 0;
    const t0 = Date.now();
    const pending: Array<Promise<void>> = [];
    while (Date.now() - t0 < BUDGET_MS || n < MIN_CALLS) {
      const [name, f] = pick(calls);
      n++;
      const check = (e: unknown) => {
        const code = (e as { code?: unknown })?.code;
        const ok = name.startsWith('raw') ? typeof code === 'string' && code in KERNEL_ERROR_CODES : e instanceof KernelError;
        if (!ok && failures.length < 20)
          failures.push(`${name}: ${e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e)}`);
      };
      try {
        const r = f();
        if (r instanceof Promise) {
          // Let some operations overlap with the calls that follow (dispose, transfers, reruns).
          const p = r.then(() => undefined, check);
          if (rnd() < 0.5) await p;
          else pending.push(p);
        }
      } catch (e) {
        check(e);
      }
      if (pending.length > 8) await Promise.all(pending.splice(0));
      if (n > 200_000) break;
    }
    await Promise.all(pending);
    console.log(`kernels fuzz: ${n} calls in ${Date.now() - t0} ms (seed ${SEED}), ${programs.length} random programs compiled and run`);
    expect(failures).toEqual([]);
    expect(n).toBeGreaterThanOrEqual(MIN_CALLS);
  }, 120_000);
});
