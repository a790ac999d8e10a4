import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HAS_STORIES, IE_CLI, STORIES_DIR, STORIES_REASON, runIe, sameBytes } from '@ie/testing';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-cli-'));
// The repository root (the CLI is apps/ie/dist/cli.js).
const ROOT = join(IE_CLI, '..', '..', '..', '..');

const ie = (...args: string[]) => runIe(args);

describe('ie basics', () => {
  it('prints help and version', () => {
    const h = ie('--help');
    expect(h.code).toBe(0);
    for (const c of ['synth', 'convert', 'inspect', 'validate']) expect(h.out).toContain(c);
    expect(ie('--version').out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(ie('convert', '--help').out).toContain('--hf-dir');
  });

  it.each([
    [['frobnicate'], 2, 'CLI_UNKNOWN_COMMAND'],
    [['convert', '--out-dir', '/tmp/x'], 2, 'CLI_USAGE'],
    [['convert', '--gguf', 'a.gguf', '--hf-dir', 'b', '--out-dir', 'c'], 2, 'CLI_USAGE'],
    [['convert', '--llama2c', 'a.bin', '--out-dir', 'c'], 2, '--tokenizer'],
    [['convert', '--gguf', 'a.gguf', '--out-dir', 'c', '--dtype', 'f64'], 2, '--dtype must be one of f32, f16, bf16'],
    [['convert', '--gguf', 'a.gguf', '--out-dir', 'c', '--block-k', '100'], 2, 'multiple of 64'],
    [['generate', '/nonexistent', 'hi', '--block-k', 'wide'], 2, '--block-k must be auto, 0 or a multiple of 64, got "wide"'],
    [
      ['convert', '--gguf', 'a.gguf', '--out-dir', 'c', '--q4-map', 'quant/q4_manifest.json', '--dtype', 'f16'],
      2,
      "--q4-map decides every tensor's encoding and layout; drop --dtype",
    ],
    [['convert', '--gguf', 'a.gguf', '--out-dir', 'c', '--force'], 2, '--force goes with --q4-map'],
    [
      ['convert', '--gguf', 'a.gguf', '--out-dir', 'c', '--q4-map', '/nonexistent.json'],
      3,
      '/nonexistent.json: 1 problem [QUANT_MANIFEST_INVALID]',
    ],
    [['quantize', '/tmp', '--out', 'x.json'], 2, '--policy is required'],
    [
      ['quantize', '/tmp', '--policy', 'quant/q4_manifest.json', '--out', '/nonexistent/m.json'],
      2,
      '--out /nonexistent/m.json: the directory /nonexistent does not exist or is not writable',
    ],
    [['convert', '--gguf', '/nonexistent.gguf', '--out-dir', 'c'], 3, 'does not exist'],
    [['synth', '--preset', 'huge', '--out-dir', 'c'], 2, 'unknown preset'],
    [['synth', '--preset', 'tiny', '--out-dir', 'c', '--seed=abc'], 2, '--seed must be an integer'],
    [['synth', '--preset', 'tiny', '--format', 'gguf', '--out-dir', 'c'], 2, 'give --out FILE.gguf instead of --out-dir'],
    [['synth', '--preset', 'tiny', '--format', 'gguf', '--out', 'c.gguf', '--dtype', 'q4_1'], 2, '--dtype'],
    [['synth', '--preset', 'tiny', '--out', 'c.gguf'], 2, '--out is for --format gguf'],
    [['synth', '--preset', 'gpt-oss-tiny', '--out-dir', 'c', '--dtype', 'f16'], 2, '--dtype must be one of bf16, f32'],
    [
      ['synth', '--preset', 'gpt-oss-tiny', '--format', 'gguf', '--out', 'c.gguf', '--dtype', 'q4_0'],
      2,
      '--dtype must be one of bf16, f32',
    ],
    [['synth', '--preset', 'gpt-oss-tiny', '--out-dir', 'c', '--layers', '5'], 2, '--layers must be an integer in 1..4'],
    [['synth', '--preset', 'gpt-oss-20b', '--out-dir', 'c', '--layers', '0'], 2, '--layers must be an integer in 1..24'],
    [['synth', '--preset', 'tiny', '--out-dir', 'c', '--shards', '2'], 2, '--shards applies to --format hf only'],
    // A negative number after its flag (llama.cpp's `-n -1`) is checked by range, not "ambiguous".
    [['generate', '/nonexistent', 'hi', '-n', '-1'], 2, '--max-tokens must be an integer in 0..16777216, got "-1"'],
    [['synth', '--preset', 'tiny', '--out-dir', 'c', '--seed', '-5'], 2, '--seed must be an integer in 0..4294967295, got "-5"'],
    [['inspect'], 2, 'takes 1 argument'],
    [['inspect', '/nonexistent'], 3, 'IEBIN_NOT_FOUND'],
    [['validate', '/tmp', '--bogus'], 2, "Unknown option '--bogus'"],
  ])('ie %j exits %i with a one-line reason', (args, code, text) => {
    const r = ie(...args);
    expect(r.code).toBe(code);
    expect(r.err).toContain(text);
    expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('a malformed model file gives the file, field and code', () => {
    const d = tmp();
    expect(ie('synth', '--preset', 'tiny', '--out-dir', d).code).toBe(0);
    const json = join(d, 'model.ie.json');
    const h = JSON.parse(readFileSync(json, 'utf8'));
    h.tensors[3].offset += 32;
    writeFileSync(json, JSON.stringify(h));
    const r = ie('validate', d);
    expect(r.code).toBe(3);
    expect(r.err.trim()).toMatch(/^ie: .*model\.ie\.json: tensors\[3\]\.offset: \d+ is not a multiple of 64 \[IEBIN_MISALIGNED\]$/);
  });
});

describe('synth → convert → inspect → validate', () => {
  it("runs the user's way on a sharded HF directory", () => {
    const hf = tmp();
    const out = tmp();
    expect(ie('synth', '--preset', 'tiny', '--format', 'hf', '--shards', '2', '--seed', '5', '--out-dir', hf).code).toBe(0);
    const c = ie('convert', '--hf-dir', hf, '--out-dir', out, '--dtype', 'bf16', '--block-k', '64');
    expect(c.code, c.err).toBe(0);
    expect(c.out).toContain('21 tensors');
    const i = ie('inspect', out);
    expect(i.code).toBe(0);
    expect(i.out).toMatch(/rotate_half/);
    expect(i.out).toMatch(/blk\.0\.attn_q\.weight\s+bf16\s+64x64\s+blocked-K 64/);
    expect(i.out).toMatch(/weight bytes per token: [\d,]+/);
    const j = JSON.parse(ie('inspect', out, '--json').out);
    expect(j.tensorCount).toBe(21);
    expect(j.totalsByDtype.bf16.tensors).toBe(16);
    expect(j.totalsByDtype.f32.tensors).toBe(5);
    // one embedding row (64 x 2 bytes) plus every other tensor
    expect(j.weightBytesPerToken).toBe(
      j.binBytes - 512 * 64 * 2 + 64 * 2 - (j.binBytes - j.tensors.reduce((a: number, t: { bytes: number }) => a + t.bytes, 0)),
    );
    const v = ie('validate', out, '--deep');
    expect(v.code).toBe(0);
    expect(v.out).toContain('checksums ok: 21 tensors');
    // --deep finds a flipped byte; plain validate does not read the weights.
    const bin = join(out, 'model.ie.bin');
    const b = readFileSync(bin);
    b[j.tensors[5].offset + 3] ^= 1;
    writeFileSync(bin, b);
    expect(ie('validate', out).code).toBe(0);
    const bad = ie('validate', out, '--deep');
    expect(bad.code).toBe(4);
    expect(bad.out).toContain(`${j.tensors[5].name}: bytes hash to`);
  });
});

describe('synth --format gguf → convert --gguf → generate', () => {
  // Q8_0 and Q4_0 rows are whole 32-element blocks: the tiny preset's ffn (176) is not, stories15m's is.
  it.each([
    ['f32', 'tiny'],
    ['f16', 'tiny'],
    ['bf16', 'tiny'],
    ['q8_0', 'stories15m'],
    ['q4_0', 'stories15m'],
    // K-quant blocks are 256 wide: stories15m's ffn_down (768 columns) takes q6_k, its 37 288-wide matrices (the embedding too) fall back to q8_0.
    ['q4_k_m', 'stories15m'],
    ['iq4_nl', 'stories15m'],
  ])('%s (%s): the file imports without loss and runs; a second synth writes the same bytes', (dtype, preset) => {
    const d = tmp();
    const gguf = join(d, `${preset}-${dtype}.gguf`);
    const r = ie('synth', '--preset', preset, '--format', 'gguf', '--dtype', dtype, '--seed', '3', '--out', gguf);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain(`GGUF, ${preset}`);
    expect(readFileSync(gguf).subarray(0, 4).toString('latin1')).toBe('GGUF');
    expect(readdirSync(d)).toEqual([`${preset}-${dtype}.gguf`]);
    const again = join(d, 'again.gguf');
    expect(ie('synth', '--preset', preset, '--format', 'gguf', '--dtype', dtype, '--seed', '3', '--out', again).code).toBe(0);
    expect(sameBytes(readFileSync(gguf), readFileSync(again))).toBe(true);
    const out = join(d, 'iebin');
    expect(ie('convert', '--gguf', gguf, '--out-dir', out, '--quiet').code).toBe(0);
    const inspect = JSON.parse(ie('inspect', out, '--json').out);
    const want = { f32: 'f32', f16: 'f16', bf16: 'bf16', q8_0: 'i8', q4_0: 'q4', q4_k_m: 'i8', iq4_nl: 'iq4_nl' }[dtype];
    const dtypeOf = (name: string) => inspect.tensors.find((t: { name: string }) => t.name === name).dtype;
    expect(dtypeOf('blk.0.attn_q.weight')).toBe(want);
    if (dtype === 'q4_k_m') {
      expect(dtypeOf('blk.0.ffn_down.weight')).toBe('q6_k');
      expect(r.out).toContain('(37 matrices in q8_0: their rows are not whole blocks of q4_k_m)');
    }
    const g = ie('generate', out, 'abc', '--max-tokens', '4', '--temperature', '0', '--json');
    expect(g.code, g.err).toBe(0);
    expect(JSON.parse(g.out).metrics.generatedTokens).toBeGreaterThan(0);
  });

  it('inspect and validate take a GGUF file as generate does: its cached conversion, or the GGUF error', () => {
    const d = tmp();
    const env = { ...process.env, IE_CACHE_DIR: join(d, 'cache') };
    const gguf = join(d, 'm.gguf');
    expect(ie('synth', '--preset', 'stories15m', '--format', 'gguf', '--dtype', 'q8_0', '--seed', '9', '--out', gguf).code).toBe(0);
    const out = join(d, 'iebin');
    expect(ie('convert', '--gguf', gguf, '--out-dir', out, '--quiet').code).toBe(0);
    const i = runIe(['inspect', gguf, '--json'], env);
    expect(i.code, i.err).toBe(0);
    // A line of its own: a slow conversion (a busy machine) prints its progress line first.
    expect(i.err).toMatch(/^ie: note: \S*m\.gguf is GGUF: converted it to IEBIN .* cached in /m);
    const tensors = (r: { out: string }) =>
      JSON.parse(r.out).tensors.map((t: { name: string; dtype: string; shape: number[]; bytes: number }) => [
        t.name,
        t.dtype,
        t.shape,
        t.bytes,
      ]);
    expect(tensors(i)).toEqual(tensors(ie('inspect', out, '--json')));
    expect(JSON.parse(i.out).weightBytesPerToken).toBe(JSON.parse(ie('inspect', out, '--json').out).weightBytesPerToken);
    const v = runIe(['validate', gguf, '--deep'], env);
    expect(v.code, v.err).toBe(0);
    expect(v.err).toContain('loaded its IEBIN conversion cached in'); // the second use converts nothing
    expect(v.out).toContain('checksums ok');
    // A file that starts as GGUF but is cut short: the GGUF reader's error, nothing cached for it.
    const cut = join(d, 'cut.gguf');
    writeFileSync(cut, readFileSync(gguf).subarray(0, 4096));
    for (const cmd of ['inspect', 'validate']) {
      const r = runIe([cmd, cut], env);
      expect(r.code).toBe(3);
      expect(r.err.trim()).toMatch(/^ie: .*cut\.gguf: .*\[GGUF_[A-Z_]+\]$/);
    }
    expect(readdirSync(join(d, 'cache')).filter((n) => n.startsWith('cut'))).toEqual([]);
  });

  it('refuses a shape GGUF cannot block, by name, and writes nothing', () => {
    const d = tmp();
    const r = ie('synth', '--preset', 'tiny', '--format', 'gguf', '--dtype', 'q4_0', '--out', join(d, 't.gguf'));
    // A flag the preset cannot take (usage, exit 2), named before anything is written.
    expect(r.code).toBe(2);
    expect(r.err).toContain("the tiny preset's blk.0.ffn_down.weight has rows of 176 elements, not whole 32-element blocks");
    expect(r.err).toContain('[CLI_USAGE]');
    expect(readdirSync(d)).toEqual([]);
  });
});

describe('generate --chat --tools (synthetic gpt-oss-tiny, whose vocabulary has the harmony tokens)', () => {
  it('forces a call and prints it as a JSON line; --json has toolCalls; a bad tools file is a usage error', () => {
    const d = tmp();
    const m = join(d, 'm');
    expect(ie('synth', '--preset', 'gpt-oss-tiny', '--seed', '3', '--out-dir', m, '--quiet').code).toBe(0);
    const tools = join(d, 'tools.json');
    const weather = {
      name: 'get_weather',
      parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 8 } }, required: ['city'] },
    };
    writeFileSync(tools, JSON.stringify([{ type: 'function', function: weather }, { name: 'get_time' }]));
    const args = [
      'generate',
      m,
      'Weather in Oslo?',
      '--chat',
      '--tools',
      tools,
      '--tool-choice',
      'get_weather',
      '--seed',
      '1',
      '-n',
      '200',
    ];
    const r = ie(...args);
    expect(r.code, r.err).toBe(0);
    const call = JSON.parse(r.out.trim().split('\n').at(-1) as string);
    expect(call.name).toBe('get_weather');
    expect(JSON.parse(call.arguments)).toEqual({ city: expect.any(String) });
    expect(r.err).toContain('turn ended (call)');
    const j = JSON.parse(ie(...args, '--json').out);
    expect(j.toolCalls).toEqual([call]);
    writeFileSync(tools, '{"name": "f"}');
    const bad = ie(...args);
    expect([bad.code, bad.err]).toEqual([2, expect.stringContaining('must hold a JSON array of functions')]);
    expect(ie('generate', m, 'x', '--chat', '--tool-choice', 'required').err).toContain('--tool-choice goes with --tools FILE');
    expect(ie('generate', m, 'x', '--tools', tools).err).toContain('--tools goes with --chat');
  });
});

describe('synth gpt-oss-tiny as IEBIN, HF and GGUF → convert → validate → generate', () => {
  /** name → [dtype, shape, crc32] of a model's tensor table. */
  const table = (dir: string) =>
    new Map(
      (
        JSON.parse(readFileSync(join(dir, 'model.ie.json'), 'utf8')).tensors as Array<{
          name: string;
          dtype: string;
          shape: number[];
          crc32: string;
        }>
      ).map((t) => [t.name, [t.dtype, t.shape.join('x'), t.crc32]]),
    );

  it("the three formats give the same model: every tensor's bytes (the GGUF router F32, as llama.cpp keeps it), the same greedy tokens", () => {
    const d = tmp();
    const direct = join(d, 'direct');
    const hf = join(d, 'hf');
    const gguf = join(d, 'm.gguf');
    const r = ie('synth', '--preset', 'gpt-oss-tiny', '--seed', '3', '--out-dir', direct, '--quiet');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/IEBIN, gpt-oss-tiny .*seed 3, bf16, experts mxfp4, .* peak RSS/);
    const h = ie('synth', '--preset', 'gpt-oss-tiny', '--seed', '3', '--format', 'hf', '--shards', '2', '--out-dir', hf);
    expect(h.code, h.err).toBe(0);
    expect(h.out).toContain('experts mxfp4, 2 shard(s)');
    expect(readdirSync(hf).sort()).toEqual([
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
      'tokenizer.json',
    ]);
    const g = ie('synth', '--preset', 'gpt-oss-tiny', '--seed', '3', '--format', 'gguf', '--out', gguf);
    expect(g.code, g.err).toBe(0);
    expect(g.out).toContain('GGUF, gpt-oss-tiny');
    // A second synth writes the same bytes.
    expect(ie('synth', '--preset', 'gpt-oss-tiny', '--seed', '3', '--format', 'gguf', '--out', join(d, 'again.gguf')).code).toBe(0);
    expect(sameBytes(readFileSync(gguf), readFileSync(join(d, 'again.gguf')))).toBe(true);
    for (const [flag, src, out] of [
      ['--hf-dir', hf, join(d, 'from-hf')],
      ['--gguf', gguf, join(d, 'from-gguf')],
    ]) {
      const c = ie('convert', flag, src, '--out-dir', out, '--quiet');
      expect(c.code, c.err).toBe(0);
    }
    const want = table(direct);
    expect(want.size).toBe(79);
    expect(want.get('blk.0.ffn_up_exps.weight')?.slice(0, 2)).toEqual(['mxfp4', '8x128x96']);
    expect(table(join(d, 'from-hf'))).toEqual(want);
    const fromGguf = table(join(d, 'from-gguf'));
    for (const [name, t] of want) {
      if (name.endsWith('.ffn_gate_inp.weight')) expect(fromGguf.get(name)?.slice(0, 2), name).toEqual(['f32', t[1]]);
      else expect(fromGguf.get(name), name).toEqual(t);
    }
    const tokens: number[][] = [];
    for (const m of [direct, join(d, 'from-hf'), join(d, 'from-gguf')]) {
      const v = ie('validate', m, '--deep');
      expect(v.code, v.err).toBe(0);
      expect(v.out).toContain('checksums ok: 79 tensors');
      const run = ie(
        'generate',
        m,
        '<|start|>user<|message|>hello world<|end|><|start|>assistant',
        '--max-tokens',
        '6',
        '--temperature',
        '0',
        '--json',
      );
      expect(run.code, run.err).toBe(0);
      const j = JSON.parse(run.out);
      // 4 harmony specials, one token each (spelt out byte by byte they alone would take 38), and 24 letters.
      expect(j.metrics.promptTokens).toBeLessThanOrEqual(4 + 24);
      tokens.push(j.tokens);
    }
    expect(tokens[1]).toEqual(tokens[0]);
    expect(tokens[2]).toEqual(tokens[0]);
  });

  it('--layers cuts a preset for benchmarks; --dtype f32 stores the same values in f32', () => {
    const d = tmp();
    const r = ie('synth', '--preset', 'gpt-oss-tiny', '--layers', '2', '--dtype', 'f32', '--out-dir', d, '--quiet');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('cut to 2 of 4 layers');
    const j = JSON.parse(ie('inspect', d, '--json').out);
    expect(j.config).toMatchObject({ n_layers: 2, sliding_layers: [true, false] });
    expect(j.tensorCount).toBe(41);
    expect(Object.keys(j.totalsByDtype).sort()).toEqual(['f32', 'mxfp4']);
    expect(j.provenance.notes).toContain('layers cut to 2 of 4');
    const g = join(tmp(), 'cut.gguf');
    expect(ie('synth', '--preset', 'tiny', '--layers', '1', '--format', 'gguf', '--out', g).code).toBe(0);
    const out = tmp();
    expect(ie('convert', '--gguf', g, '--out-dir', out, '--quiet').code).toBe(0);
    expect(JSON.parse(ie('inspect', out, '--json').out).config.n_layers).toBe(1);
  });
});

describe("the seed's interface: make and hf_to_iebin", () => {
  it('make bench-cuda says ie is a CPU engine and exits 2; make convert names what it needs', () => {
    const cuda = spawnSync('make', ['-s', 'bench-cuda'], { cwd: ROOT, encoding: 'utf8' });
    expect(cuda.status).toBe(2);
    expect(cuda.stderr).toContain('ie has no CUDA build');
    const convert = spawnSync('make', ['-s', 'convert'], { cwd: ROOT, encoding: 'utf8' });
    expect(convert.status).toBe(2);
    expect(convert.stderr).toContain('give HF_DIR=DIR OUT_DIR=DIR');
    const bench = spawnSync('make', ['-n', 'bench', 'PROMPTS=p.txt', 'RUNS=2'], { cwd: ROOT, encoding: 'utf8' });
    expect(bench.stdout).toContain('pnpm@10.34.9 bench');
  });

  it('scripts/hf_to_iebin converts a Hugging Face directory as ie convert does', () => {
    const hf = tmp();
    expect(ie('synth', '--preset', 'tiny', '--format', 'hf', '--out-dir', hf).code).toBe(0);
    const a = tmp();
    const b = tmp();
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'hf_to_iebin'), '--hf-dir', hf, '--out-dir', a, '--quiet'], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(ie('convert', '--hf-dir', hf, '--out-dir', b, '--quiet').code).toBe(0);
    expect(sameBytes(readFileSync(join(a, 'model.ie.bin')), readFileSync(join(b, 'model.ie.bin')))).toBe(true);
    const usage = spawnSync(process.execPath, [join(ROOT, 'scripts', 'hf_to_iebin'), '--out-dir', a], { encoding: 'utf8' });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain('--hf-dir DIR is required');
  });
});

describe.skipIf(!HAS_STORIES)(`stories260K through the CLI${STORIES_REASON}`, () => {
  it('--llama2c and --gguf give identical tensors', () => {
    const a = tmp();
    const b = tmp();
    expect(
      ie('convert', '--llama2c', join(STORIES_DIR, 'stories260K.bin'), '--tokenizer', join(STORIES_DIR, 'tok512.bin'), '--out-dir', a).code,
    ).toBe(0);
    expect(ie('convert', '--gguf', join(STORIES_DIR, 'stories260K.gguf'), '--out-dir', b).code).toBe(0);
    const ja = JSON.parse(readFileSync(join(a, 'model.ie.json'), 'utf8'));
    const jb = JSON.parse(readFileSync(join(b, 'model.ie.json'), 'utf8'));
    expect(ja.tensors).toEqual(jb.tensors); // names, dtypes, shapes, offsets and CRCs
    expect(sameBytes(readFileSync(join(a, 'model.ie.bin')), readFileSync(join(b, 'model.ie.bin')))).toBe(true);
  });
});

describe('an interrupted convert leaves the previous output intact', () => {
  /** Starts a long export over `dir`, signals it once a partial file has grown, and returns its exit status. */
  async function interrupt(dir: string, signal: NodeJS.Signals): Promise<number | null> {
    const child = spawn(process.execPath, [IE_CLI, 'synth', '--preset', 'stories15m', '--seed', '9', '--out-dir', dir, '--quiet'], {
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((res) => child.on('exit', (code, sig) => res(code ?? (sig ? -1 : null))));
    for (let i = 0; i < 2000; i++) {
      const partial = readdirSync(dir).find((n) => n.startsWith('.model.ie.bin.partial-'));
      if (partial && statSync(join(dir, partial)).size > 4 << 20) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(readdirSync(dir).some((n) => n.includes('.partial-'))).toBe(true); // it was mid-write
    child.kill(signal);
    return exited;
  }

  for (const signal of ['SIGTERM', 'SIGINT', 'SIGKILL'] as const) {
    it(`on ${signal}`, async () => {
      const d = tmp();
      expect(ie('synth', '--preset', 'tiny', '--out-dir', d).code).toBe(0);
      const before = [readFileSync(join(d, 'model.ie.json')), readFileSync(join(d, 'model.ie.bin'))];
      const code = await interrupt(d, signal);
      if (signal === 'SIGTERM') expect(code).toBe(143);
      if (signal === 'SIGINT') expect(code).toBe(130);
      expect(sameBytes(readFileSync(join(d, 'model.ie.json')), before[0])).toBe(true);
      expect(sameBytes(readFileSync(join(d, 'model.ie.bin')), before[1])).toBe(true);
      expect(ie('validate', d, '--deep').code).toBe(0);
      const left = readdirSync(d).filter((n) => n.includes('.partial-'));
      if (signal === 'SIGKILL') {
        // Nothing can run on SIGKILL: the partial stays, validate points at it, the next export removes it.
        expect(left.length).toBe(1);
        expect(ie('validate', d).out).toContain('leftover partial file');
        expect(ie('synth', '--preset', 'tiny', '--seed', '2', '--out-dir', d).code).toBe(0);
        expect(readdirSync(d).filter((n) => n.includes('.partial-'))).toEqual([]);
      } else {
        expect(left).toEqual([]);
      }
      expect(existsSync(join(d, 'model.ie.json'))).toBe(true);
    });
  }
});

describe('ie generate and ie bench', () => {
  let tinyModel = '';
  const model = () => {
    if (!tinyModel) {
      tinyModel = tmp();
      expect(ie('synth', '--preset', 'tiny', '--out-dir', tinyModel).code).toBe(0);
    }
    return tinyModel;
  };

  it.skipIf(!HAS_STORIES)(`prints run.c's exact text for stories260K${STORIES_REASON}`, () => {
    const d = tmp();
    expect(
      ie('convert', '--llama2c', join(STORIES_DIR, 'stories260K.bin'), '--tokenizer', join(STORIES_DIR, 'tok512.bin'), '--out-dir', d).code,
    ).toBe(0);
    const r = ie('generate', d, 'Once upon a time', '--max-tokens', '252', '--temperature', '0', '--threads', '1');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toBe(readFileSync(join(STORIES_DIR, 'expected', 'greedy_once-upon-a-time_n256.stdout'), 'utf8'));
    expect(r.err).toMatch(/252 generated .* tok\/s.*fp32 on 1 thread/);
  });

  it('reports the completion and its metrics as JSON', () => {
    const r = ie('generate', model(), 'abc', '--max-tokens', '8', '--temperature', '0', '--json');
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.tokens).toHaveLength(8);
    expect(j.stopReason).toBe('length');
    expect(j.precision).toBe('fp32');
    expect(j.metrics.generatedTokens).toBe(8);
    expect(j.metrics.decodeTokensPerSec).toBeGreaterThan(0);
  });

  it('converts precision at load with a notice', () => {
    const r = ie('generate', model(), 'abc', '--max-tokens', '4', '--precision', 'int4w', '--json');
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).precision).toBe('int4w');
    expect(r.err).toMatch(/note: 14 matrices converted from fp32 to int4w/);
  });

  it('benchmarks a prompt file: one JSON line per run, work-touch apart', () => {
    const prompts = join(tmp(), 'p.txt');
    writeFileSync(prompts, '# two prompts\nabc\nhello world\n');
    const r = spawnSync(process.execPath, [IE_CLI, 'bench', model(), '--runs', '2', '--warmup', '0', '--max-new', '5'], {
      encoding: 'utf8',
      env: { ...process.env, PROMPTS: prompts, IE_BYTES_PER_TOKEN: '4096', IE_STRIDE_BYTES: '64' },
    });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.run)).toEqual([1, 2]);
    for (const l of lines) {
      // A stride of 64 reads every line of the span: what moved is the span itself.
      expect(l).toMatchObject({
        prompts: 2,
        tokens: 10,
        precision: 'fp32',
        touch_bytes_per_token: 4096,
        touch_stride_bytes: 64,
        touch_read_bytes_per_token: 4096,
      });
      for (const k of [
        'wall_s',
        'tokens_per_s',
        'decode_tokens_per_s',
        'ttft_ms_p50',
        'p50_ms',
        'p95_ms',
        'peak_rss_bytes',
        'weight_bytes_per_token',
        'effective_gbs',
        'touch_ms',
      ])
        expect(l[k], k).toBeGreaterThan(0);
      expect(typeof l.isa).toBe('string');
    }
  });

  it("takes the seed's misspelt prompt file name prompts_10..txt as prompts_10.txt", () => {
    const r = spawnSync(
      process.execPath,
      [IE_CLI, 'bench', model(), '--prompts', 'benchmarks/prompts_10..txt', '--runs', '1', '--warmup', '0', '--max-new', '2'],
      { encoding: 'utf8', cwd: ROOT },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim()).prompts).toBe(10);
  });

  it('strict mode: with IE_REQUIRE_MODEL=1 `pnpm bench` refuses a missing model instead of making one; other values are errors', () => {
    const missing = join(tmp(), 'no-model');
    const script = join(ROOT, 'scripts', 'bench.mjs');
    const strict = spawnSync(process.execPath, [script], {
      encoding: 'utf8',
      cwd: ROOT,
      env: { ...process.env, MODEL: missing, IE_REQUIRE_MODEL: '1' },
    });
    expect(strict.status).toBe(3);
    expect(strict.stderr).toContain('IE_REQUIRE_MODEL=1 forbids making one');
    expect(existsSync(missing)).toBe(false);
    const bad = spawnSync(process.execPath, [script], {
      encoding: 'utf8',
      cwd: ROOT,
      env: { ...process.env, MODEL: missing, IE_REQUIRE_MODEL: 'true' },
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('IE_REQUIRE_MODEL must be 0 or 1');
    const cli = spawnSync(process.execPath, [IE_CLI, 'generate', missing, 'hi', '--require-model'], { encoding: 'utf8' });
    expect(cli.status).toBe(3);
    expect(cli.stderr).toContain('IEBIN_NOT_FOUND');
    const env = spawnSync(process.execPath, [IE_CLI, 'generate', model(), 'hi'], {
      encoding: 'utf8',
      env: { ...process.env, IE_REQUIRE_MODEL: '2' },
    });
    expect(env.status).toBe(2);
    expect(env.stderr).toContain('IE_REQUIRE_MODEL: must be one of 0, 1');
  });

  it.each([
    [['generate', '/nonexistent', 'hi'], 3, 'IEBIN_NOT_FOUND'],
    [['generate', 'MODEL', 'hi', '--precision', 'fp8'], 2, '--precision must be one of'],
    [['generate', 'MODEL', 'hi', '--temperature', 'hot'], 2, '--temperature must be a number'],
    [['generate', 'MODEL', 'hi', '--top-p', '3'], 2, 'IE_INVALID_OPTION'],
    [['bench', 'MODEL', '--prompts', '/nonexistent.txt'], 2, 'cannot read the prompt file'],
    [['synth', '--preset', 'constructor', '--out-dir', '/nonexistent/never'], 2, 'unknown preset "constructor"'],
    [
      ['bench', 'MODEL', '--prompts', '/dev/zero'],
      2,
      '--prompts /dev/zero: cannot read the prompt file: is not a regular file (a character device); only regular files are read [CLI_USAGE]',
    ],
  ])('ie %j exits %i', (args, code, text) => {
    const r = ie(...args.map((a) => (a === 'MODEL' ? model() : a)));
    expect(r.code).toBe(code);
    expect(r.err).toContain(text);
    expect(r.err).not.toMatch(/\n\s+at /);
  });
});
