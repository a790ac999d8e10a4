/** <think> reasoning of templated models: split from the answer however the text is cut into pieces. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SYNTH_PRESETS, exportIebin, synthModel } from '@ie/format';
import { Engine } from '../index.js';
import { ReasoningSplitter, promptOpensThinking, templateThinks } from './reasoning.js';

/** The text in pieces of `size` characters through a splitter: the channels' texts, and what it kept. */
function split(text: string, size: number, open = false) {
  const s = new ReasoningSplitter(open);
  const got = { analysis: '', final: '' };
  for (let i = 0; i < text.length; i += size) for (const [t, c] of s.push(text.slice(i, i + size))) got[c] += t;
  for (const [t, c] of s.flush()) got[c] += t;
  expect(got).toEqual({ analysis: s.reasoning, final: s.answer });
  return got;
}

describe('reasoning in <think> blocks', () => {
  it('is the block that opens the answer; the answer is what follows it', () => {
    for (const size of [1, 2, 3, 7, 1000]) {
      expect(split('<think>\nThe user greets. Reply.\n</think>\n\nHello <b>there</b>!', size), String(size)).toEqual({
        analysis: 'The user greets. Reply.\n',
        final: 'Hello <b>there</b>!',
      });
      // The prompt opened the block (DeepSeek-R1's generation prompt ends in <think>).
      expect(split('Short thought.</think>Answer.', size, true)).toEqual({ analysis: 'Short thought.', final: 'Answer.' });
      // No block: all answer, a <think> later on included; an unfinished block is all reasoning.
      expect(split('  Plain answer, then <think>x</think>', size)).toEqual({
        analysis: '',
        final: '  Plain answer, then <think>x</think>',
      });
      expect(split('<think>still thinking </thi', size)).toEqual({ analysis: 'still thinking </thi', final: '' });
      expect(split('<thin', size)).toEqual({ analysis: '', final: '<thin' });
    }
  });

  it('is recognised in templates that write both tags, and in prompts that end inside a block', () => {
    expect(templateThinks('{{ "<think>" }}…{{ "</think>" }}')).toBe(true);
    expect(templateThinks('{{ messages }}')).toBe(false);
    expect(promptOpensThinking('<|assistant|>\n<think>\n')).toBe(true);
    expect(promptOpensThinking('<think>\n\n</think>\n\n')).toBe(false);
    expect(promptOpensThinking('<think>x</think><|assistant|>\n')).toBe(false);
  });

  it('through the engine: a template that opens the block makes the answer reasoning until it closes', async () => {
    const m = synthModel(SYNTH_PRESETS.tiny.config, { seed: 21 });
    m.chat = {
      ...(m.chat ?? {}),
      template:
        '{% for m in messages %}<|{{ m.role }}|>\n{{ m.content | replace("<think>", "") }}</s>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n<think>\n{% endif %}{# </think> #}',
    };
    const dir = mkdtempSync(join(tmpdir(), 'ie-think-'));
    await exportIebin(m, dir, { converter: 'test' });
    await using e = await Engine.load(dir);
    const ask = [{ role: 'user' as const, content: 'hello' }];
    const streamed = { analysis: '', final: '' };
    const r = await e.chat(ask, { temperature: 0, maxTokens: 12, onText: (t, c) => (streamed[c as 'analysis' | 'final'] += t) });
    const plain = await e.complete(e.chatPrompt(ask).ids, { temperature: 0, maxTokens: 12 });
    expect(r.tokens).toEqual(plain.tokens);
    // A random model never closes the block: all of it is reasoning.
    expect(plain.text.includes('</think>')).toBe(false);
    expect(r.analysis).toBe(plain.text.trim());
    expect(r.final).toBe('');
    expect(streamed).toEqual({ analysis: plain.text.trimStart(), final: '' });
    expect(r.messages.map((x) => x.channel)).toEqual(r.analysis ? ['analysis', 'final'] : ['final']);
  });
});
