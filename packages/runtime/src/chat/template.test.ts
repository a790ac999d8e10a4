/** Chat templates of real models rendered with @huggingface/jinja, and their prompts tokenized. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SYNTH_CHAT_TEMPLATE, synthHfTokenizerJson, synthVocabulary } from '@ie/format';
import { IeRuntimeError } from '../errors.js';
import { HfTokenizer } from '../tokenizer/hf.js';
import { SpmTokenizer } from '../tokenizer/spm.js';
import type { ChatMessage } from './harmony.js';
import { ChatTemplate, ChatTemplateError, encodeChatPrompt, strftime } from './template.js';

const fixture = (name: string) => readFileSync(join(import.meta.dirname, '..', '..', 'test', 'fixtures', 'chat-templates', name), 'utf8');
const TINYLLAMA = fixture('tinyllama-chat.jinja');
const LLAMA2 = fixture('llama-2-chat.jinja');
const QWEN2 = fixture('qwen2-chatml.jinja');
const tokens = { bosToken: '<s>', eosToken: '</s>' };

function thrown(f: () => unknown): ChatTemplateError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(ChatTemplateError);
    expect(e).toBeInstanceOf(IeRuntimeError);
    return e as ChatTemplateError;
  }
  throw new Error('expected a ChatTemplateError');
}

describe('rendering real chat templates', () => {
  it("TinyLlama-Chat (Zephyr): <|role|> turns ended by </s>, the assistant's header last; ie synth carries the same template", () => {
    expect(SYNTH_CHAT_TEMPLATE).toBe(TINYLLAMA);
    const t = new ChatTemplate(TINYLLAMA);
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello.' },
      { role: 'user', content: 'Name a colour' },
    ];
    expect(t.render(messages, tokens)).toBe(
      '<|system|>\nYou are terse.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello.</s>\n<|user|>\nName a colour</s>\n<|assistant|>\n',
    );
    expect(t.render(messages.slice(0, 2), { ...tokens, addGenerationPrompt: false })).toBe(
      '<|system|>\nYou are terse.</s>\n<|user|>\nHi</s>\n',
    );
  });

  it('Llama-2-chat: [INST] with the system message folded into the first turn, BOS written by the template', () => {
    const t = new ChatTemplate(LLAMA2);
    expect(
      t.render(
        [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: ' What is 2+2? ' },
          { role: 'assistant', content: 'Four.' },
          { role: 'user', content: 'And 3+3?' },
        ],
        tokens,
      ),
      // strip() applies to the system block and the message together, as in Python: the space after it stays.
    ).toBe('<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n What is 2+2? [/INST] Four. </s><s>[INST] And 3+3? [/INST]');
  });

  it('Llama-2-chat: raise_exception is IE_CHAT_TEMPLATE_REFUSED with the template’s own words', () => {
    const t = new ChatTemplate(LLAMA2, 'm: the chat template');
    const e = thrown(() =>
      t.render(
        [
          { role: 'user', content: 'a' },
          { role: 'user', content: 'b' },
        ],
        tokens,
      ),
    );
    expect(e.code).toBe('IE_CHAT_TEMPLATE_REFUSED');
    expect(e.message).toBe(
      'm: the chat template refused the conversation: "Conversation roles must alternate user/assistant/user/assistant/..."; change the messages (roles, order, system message) to what the template accepts',
    );
  });

  it('Qwen2 (ChatML): a default system message when none is given, no BOS', () => {
    const t = new ChatTemplate(QWEN2);
    const q = { bosToken: undefined, eosToken: '<|im_end|>' };
    expect(t.render([{ role: 'user', content: 'Hi' }], q)).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(
      t.render(
        [
          { role: 'system', content: 'S' },
          { role: 'user', content: 'U' },
        ],
        { ...q, addGenerationPrompt: false },
      ),
    ).toBe('<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n');
  });

  it('strftime_now and date_string tell the given time in English; extra variables reach the template', () => {
    const now = new Date(2025, 0, 5, 14, 7, 9);
    const t = new ChatTemplate(
      "{{ strftime_now('%Y-%m-%d %H:%M:%S %a %A %b %B %I%p %j %y %e %%') }}|{{ date_string }}|{{ 'on' if enable_thinking else 'off' }}",
    );
    expect(t.render([{ role: 'user', content: 'x' }], { now, variables: { enable_thinking: true } })).toBe(
      '2025-01-05 14:07:09 Sun Sunday Jan January 02PM 005 25  5 %|05 Jan 2025|on',
    );
    expect(strftime(new Date(2024, 6, 26), '%d %b %Y')).toBe('26 Jul 2024');
  });

  it('a template that does not parse, or fails while rendering, is IE_CHAT_TEMPLATE_INVALID saying what to do', () => {
    let e = thrown(() => new ChatTemplate('{% for m in messages %}{{ m.content }}'));
    expect(e.code).toBe('IE_CHAT_TEMPLATE_INVALID');
    expect(e.message).toMatch(/^the model's chat template does not parse as Jinja \(.+\): pass a prompt .* to generate\(\) instead/);
    e = thrown(() => new ChatTemplate('{{ messages | no_such_filter }}').render([{ role: 'user', content: 'x' }]));
    expect(e.code).toBe('IE_CHAT_TEMPLATE_INVALID');
    expect(e.message).toMatch(/fails to render \(.*no_such_filter.*\)/);
    // range() is bounded: a template cannot make the prompt a billion numbers long.
    e = thrown(() => new ChatTemplate('{% for i in range(1000000000) %}x{% endfor %}').render([{ role: 'user', content: 'x' }]));
    expect(e.code).toBe('IE_CHAT_TEMPLATE_INVALID');
    expect(e.message).toMatch(/exceeds the template cap of 100000/);
    expect(new ChatTemplate('{% for i in range(2, 8, 3) %}{{ i }}{% endfor %}').render([])).toBe('25');
    // So is the work: nested loops and recursive macros stop at the step cap instead of hanging.
    for (const src of [
      '{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}',
      '{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}',
      '{% set x = range(100000) %}{% for a in x %}{% for b in x %}{% endfor %}{% endfor %}',
    ]) {
      e = thrown(() => new ChatTemplate(src).render([{ role: 'user', content: 'x' }]));
      expect(e.code).toBe('IE_CHAT_TEMPLATE_INVALID');
      expect(e.message).toMatch(/takes more than 101000 evaluation steps/);
    }
    // And the size of what it makes: doubling a list (a step each, however long) stops at the value
    // cap instead of taking gigabytes, as does growing one by one in a loop (quadratic in copies).
    for (const src of [
      '{% set ns = namespace(x=[1]) %}{% for i in range(40) %}{% set ns.x = ns.x + ns.x %}{% endfor %}{{ ns.x | length }}',
      '{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = ns.x + [i] %}{% endfor %}{{ ns.x | length }}',
      '{% set ns = namespace(s="ab") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}',
    ]) {
      const t0 = performance.now();
      e = thrown(() => new ChatTemplate(src).render([{ role: 'user', content: 'x' }]));
      expect(e.code, src).toBe('IE_CHAT_TEMPLATE_INVALID');
      expect(e.message, src).toMatch(/makes values of more than \d+ characters and items in all/);
      expect(performance.now() - t0, src).toBeLessThan(20_000);
    }
    // The cap grows with the conversation: a long message renders.
    const long = 'y'.repeat(3_000_000);
    expect(
      new ChatTemplate('{% for m in messages %}{{ m.content }}{{ m.content }}{% endfor %}').render([{ role: 'user', content: long }]),
    ).toBe(long + long);
  });

  it('a message’s members other than role and content never reach the template', () => {
    const t = new ChatTemplate('{% for m in messages %}{{ m.role }}:{{ m.content }}:{{ m.secret is defined }}{% endfor %}');
    const m = { role: 'user', content: 'c', secret: 'k' } as ChatMessage;
    expect(t.render([m])).toBe('user:c:false');
  });
});

describe('tokenizing a rendered prompt', () => {
  const vocab = synthVocabulary(300);
  const spm = new SpmTokenizer(vocab, 1, 2);
  const specials = new Map([
    ['<s>', 1],
    ['</s>', 2],
  ]);
  const hf = new HfTokenizer(JSON.parse(synthHfTokenizerJson(vocab)), 1, 2);

  it('special tokens in the text become their ids (SentencePiece split at them, as llama.cpp does; tokenizer.json by its added tokens)', () => {
    const text = '<|user|>\nHi</s>\n<|assistant|>\n';
    const ids = encodeChatPrompt(spm, text, { bosToken: '<s>', specials });
    // BOS by the vocabulary's rule (add_bos), then the pieces around </s>, each encoded alone.
    expect(ids).toEqual([1, ...spm.encode('<|user|>\nHi', { bos: false }), 2, ...spm.encode('\n<|assistant|>\n', { bos: false })]);
    expect(ids.filter((i) => i === 1 || i === 2)).toEqual([1, 2]);
    const hfIds = encodeChatPrompt(hf, text, { bosToken: '<s>', specials });
    expect(hfIds[0]).toBe(1);
    expect(hfIds.filter((i) => i === 1 || i === 2)).toEqual([1, 2]);
    // Both add the word-start space to the text after </s> (the decoder shows it), and agree id for id.
    expect(hfIds).toEqual(ids);
    expect(spm.decode(ids)).toBe('<|user|>\nHi \n<|assistant|>\n');
  });

  it('no second BOS when the template writes it (Llama-2), one BOS when it does not (TinyLlama), none where the vocabulary adds none', () => {
    const llama2 = new ChatTemplate(LLAMA2).render(
      [
        { role: 'user', content: 'A' },
        { role: 'assistant', content: 'B' },
        { role: 'user', content: 'C' },
      ],
      tokens,
    );
    for (const t of [spm, hf]) {
      const ids = encodeChatPrompt(t, llama2, { bosToken: '<s>', specials });
      // One BOS per turn, from the text: the first at position 0, not doubled.
      expect(ids[0]).toBe(1);
      expect(ids[1]).not.toBe(1);
      expect(ids.filter((i) => i === 1).length).toBe(2);
      expect(ids.filter((i) => i === 2).length).toBe(1);
    }
    const tiny = new ChatTemplate(TINYLLAMA).render([{ role: 'user', content: 'A' }], tokens);
    expect(encodeChatPrompt(spm, tiny, { bosToken: '<s>', specials })[0]).toBe(1);
    expect(encodeChatPrompt(spm, tiny, { bosToken: '<s>', specials }).filter((i) => i === 1).length).toBe(1);
    const noBos = new SpmTokenizer({ ...vocab, add_bos: false }, 1, 2);
    const ids = encodeChatPrompt(noBos, tiny, { bosToken: '<s>', specials });
    expect(ids[0]).not.toBe(1);
    expect(ids.includes(1)).toBe(false);
  });

  it('the longest special wins where one starts another', () => {
    const t = new SpmTokenizer({ ...vocab, add_bos: false }, 1, 2);
    const ids = encodeChatPrompt(t, 'a<s>b</s>', {
      specials: new Map([
        ['<', 5],
        ['<s>', 1],
        ['</s>', 2],
      ]),
    });
    expect(ids).toEqual([...t.encode('a', { bos: false }), 1, ...t.encode('b', { bos: false }), 2]);
  });
});
