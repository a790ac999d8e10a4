import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT, SHARED_DIR, runIe } from '@ie/testing';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-cli-gptoss-'));
const ie = (...args: string[]) => runIe(args);
const GGUF = join(SHARED_DIR, 'models', 'gpt-oss-tiny', 'gguf', 'model_bf16.gguf');
const HAS = existsSync(GGUF);
const REASON = HAS ? '' : ` — SKIPPED: ${GGUF} not found (CI provides ../shared)`;
const POLICY = join(REPO_ROOT, 'quant/gpt-oss_q4_manifest.json');

describe.skipIf(!HAS)(`gpt-oss through the CLI${REASON}`, () => {
  it('convert --gguf, inspect (experts, window, sinks, active bytes), generate', () => {
    const out = tmp();
    expect(ie('convert', '--gguf', GGUF, '--out-dir', out, '--quiet').code).toBe(0);
    const i = ie('inspect', out);
    expect(i.code).toBe(0);
    expect(i.out).toContain('experts     8, 4 per token');
    expect(i.out).toContain('sliding window 8 on 2 of 4 layers');
    expect(i.out).toContain('attention sinks');
    const j = JSON.parse(ie('inspect', out, '--json').out);
    // Active bytes: every tensor but the experts (and their biases) once, those at 4 of 8, one embedding row.
    const experts = j.tensors
      .filter((t: { name: string }) => /_exps\.(weight|bias)$/.test(t.name))
      .reduce((a: number, t: { bytes: number }) => a + t.bytes, 0);
    const rest = j.tensors
      .filter((t: { name: string }) => !/_exps\.(weight|bias)$/.test(t.name) && t.name !== 'token_embd.weight')
      .reduce((a: number, t: { bytes: number }) => a + t.bytes, 0);
    expect(j.weightBytesPerToken).toBe(Math.round(rest + experts / 2 + 64 * 2));
    const g = ie('generate', out, 'hello', '--max-tokens', '4', '--temperature', '0', '--json');
    expect(g.code).toBe(0);
    expect(JSON.parse(g.out).tokens).toHaveLength(4);
    const chat = ie('generate', out, 'hello', '--chat');
    expect(chat.code).toBe(3);
    expect(chat.err).toContain('IE_CHAT_UNSUPPORTED');
  });

  it('convert --q4-map quant/gpt-oss_q4_manifest.json measures the policy through the MoE model: random weights are refused (exit 5), --no-gate exports int4w attention beside the MXFP4 experts', () => {
    const refused = tmp();
    const r = ie('convert', '--gguf', GGUF, '--out-dir', refused, '--q4-map', POLICY, '--quiet');
    expect(r.code).toBe(5);
    expect(r.err).toMatch(/REJECTED/);
    expect(existsSync(join(refused, 'model.ie.json'))).toBe(false);
    const out = tmp();
    expect(ie('convert', '--gguf', GGUF, '--out-dir', out, '--q4-map', POLICY, '--no-gate', '--quiet').code).toBe(0);
    const h = JSON.parse(readFileSync(join(out, 'model.ie.json'), 'utf8'));
    const dtype = (n: string) => h.tensors.find((t: { name: string }) => t.name === n).dtype;
    expect(dtype('blk.0.attn_q.weight')).toBe('q4');
    expect(dtype('blk.0.ffn_gate_exps.weight')).toBe('mxfp4');
    expect(dtype('blk.0.ffn_gate_inp.weight')).toBe('f32'); // the router as the GGUF stores it
    expect(ie('validate', out).code).toBe(0);
  });
});
