/** Chat templates carried from Hugging Face directories and GGUF files into model.ie.json, and checked there. */
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_CHAT_TEMPLATE_BYTES, pickChatTemplate, pickSpecialToken } from './chat-template.js';
import { exportIebin } from './export-iebin.js';
import { FormatError } from './errors.js';
import { openGguf } from './gguf.js';
import { writeGguf } from './gguf-writer.js';
import { parseIebinHeader } from './header.js';
import { openHfDir, writeHfDir } from './hf.js';
import type { ModelConfig } from './llama.js';
import { IebinReader } from './reader.js';
import type { ModelSource } from './source.js';
import { SYNTH_CHAT_TEMPLATE, SYNTH_PRESETS, synthModel } from './synth.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-chat-'));
const config: ModelConfig = { ...SYNTH_PRESETS.tiny.config, vocab_size: 300 };
const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

async function iebin(source: ModelSource): Promise<string> {
  const d = tmp();
  await exportIebin(source, d, { converter: 'test' });
  await source.close();
  return d;
}

/** The error `f` throws (sync or async); fails the test when it throws nothing. */
async function caught(f: () => unknown): Promise<FormatError> {
  try {
    await f();
  } catch (e) {
    expect(e).toBeInstanceOf(FormatError);
    return e as FormatError;
  }
  throw new Error('expected an error');
}

describe('model.ie.json chat', () => {
  it('a synthetic llama model carries TinyLlama-Chat’s template and its <s> / </s> strings through export and read', async () => {
    const d = await iebin(synthModel(config, { seed: 2 }));
    const text = readFileSync(join(d, 'model.ie.json'), 'utf8');
    // One line of its own, between the tokenizer and the tensor table, covered by header_sha256.
    const lines = text.split('\n');
    const at = lines.findIndex((l) => l.startsWith('  "chat": '));
    expect(lines[at - 1].startsWith('  "tokenizer": ')).toBe(true);
    expect(lines[at + 1]).toBe('  "tensors": [');
    const r = await IebinReader.open(d);
    expect(r.header.chat).toEqual({ template: SYNTH_CHAT_TEMPLATE, bos_token: '<s>', eos_token: '</s>' });
    await r.close();
    // Edited after export: the checksum catches a template changed in place.
    const edited = text.replace('<|user|>', '<|usr|>');
    expect((await caught(() => parseIebinHeader(edited, 'model.ie.json'))).code).toBe('IEBIN_HEADER_CHECKSUM');
  });

  it('a model without a template has no chat member, and headers written before it existed read as before', async () => {
    const src = synthModel(config, { seed: 2 });
    delete src.chat;
    const d = await iebin(src);
    const text = readFileSync(join(d, 'model.ie.json'), 'utf8');
    expect(text).not.toContain('"chat"');
    const h = parseIebinHeader(text, 'model.ie.json');
    expect(h.chat).toBeUndefined();
    // The same header without its checksum line (an older writer's) parses too.
    const old = text.replace(/,\n {2}"header_sha256": "[0-9a-f]{64}"/, '');
    expect(old).not.toContain('header_sha256');
    expect(parseIebinHeader(old, 'model.ie.json').chat).toBeUndefined();
  });

  it('refuses a malformed chat member with IEBIN_BAD_CHAT_TEMPLATE naming the file and the field', async () => {
    const d = await iebin(synthModel(config, { seed: 2 }));
    const raw = JSON.parse(readFileSync(join(d, 'model.ie.json'), 'utf8')) as Record<string, unknown>;
    // Edited by hand: without the checksum, as an older writer's header.
    delete raw.header_sha256;
    const bad = async (chat: unknown, field: string, message: RegExp) => {
      const e = await caught(() => parseIebinHeader(JSON.stringify({ ...raw, chat }), 'm/model.ie.json'));
      expect(e.code).toBe('IEBIN_BAD_CHAT_TEMPLATE');
      expect(e.file).toBe('m/model.ie.json');
      expect(e.field).toBe(field);
      expect(e.message).toMatch(message);
    };
    await bad('{{ x }}', 'chat', /must be an object/);
    await bad({ template: 42 }, 'chat.template', /must be a string, got number/);
    await bad({ template: '' }, 'chat.template', /is empty/);
    await bad({ template: 'x'.repeat(MAX_CHAT_TEMPLATE_BYTES + 1) }, 'chat.template', /262145 bytes, more than the cap of 262144/);
    // The cap counts UTF-8 bytes, not characters: 100,000 three-byte characters are 300,000 bytes.
    await bad({ template: '\u20ac'.repeat(100_000) }, 'chat.template', /300000 bytes/);
    await bad({ template: 'a\u0000b' }, 'chat.template', /NUL/);
    await bad({ template: 'x', bos_token: ['<s>'] }, 'chat.bos_token', /must be a string, got an array/);
    await bad({ template: 'x', eos_token: 'e'.repeat(2000) }, 'chat.eos_token', /2000 bytes/);
    await bad({ template: 'x', tools: 'y' }, 'chat.tools', /not a chat field/);
    // At the cap exactly, it is accepted.
    const ok = parseIebinHeader(JSON.stringify({ ...raw, chat: { template: 'x'.repeat(MAX_CHAT_TEMPLATE_BYTES) } }), 'model.ie.json');
    expect(ok.chat?.template.length).toBe(MAX_CHAT_TEMPLATE_BYTES);
    expect(ok.chat?.bos_token).toBeUndefined();
  });
});

describe('Hugging Face chat templates', () => {
  it('writeHfDir writes tokenizer_config.json; openHfDir reads it back; ie convert carries it into the header', async () => {
    const hf = tmp();
    await writeHfDir(synthModel(config, { seed: 3 }), hf);
    const cfg = JSON.parse(readFileSync(join(hf, 'tokenizer_config.json'), 'utf8'));
    expect(cfg).toEqual({ add_bos_token: true, bos_token: '<s>', eos_token: '</s>', chat_template: SYNTH_CHAT_TEMPLATE });
    const src = await openHfDir(hf);
    expect(src.chat).toEqual({ template: SYNTH_CHAT_TEMPLATE, bos_token: '<s>', eos_token: '</s>' });
    // Hashed into the provenance like every file the model came from.
    expect(src.files.map((f) => f.split('/').pop())).toContain('tokenizer_config.json');
    const d = await iebin(src);
    const r = await IebinReader.open(d);
    expect(r.header.chat?.template).toBe(SYNTH_CHAT_TEMPLATE);
    expect(r.header.provenance.sources.map((s) => s.file)).toContain('tokenizer_config.json');
    await r.close();
  });

  it('reads the list form (the "default" entry), AddedToken objects, and chat_template.jinja ahead of tokenizer_config.json', async () => {
    const hf = tmp();
    await writeHfDir(synthModel(config, { seed: 3 }), hf);
    const put = (v: unknown) => writeFileSync(join(hf, 'tokenizer_config.json'), JSON.stringify(v));
    put({
      bos_token: { __type: 'AddedToken', content: '<s>', lstrip: false },
      eos_token: '<|im_end|>',
      chat_template: [
        { name: 'tool_use', template: '{{ tools }}' },
        { name: 'default', template: CHATML },
      ],
    });
    const open = async () => {
      const s = await openHfDir(hf);
      await s.close();
      return s;
    };
    let src = await open();
    expect(src.chat).toEqual({ template: CHATML, bos_token: '<s>', eos_token: '<|im_end|>' });
    // A list without "default": transformers would refuse to choose; ie records none, with a note.
    put({ chat_template: [{ name: 'tool_use', template: '{{ tools }}' }] });
    src = await open();
    expect(src.chat).toBeUndefined();
    expect(src.notes.join('\n')).toMatch(/none named "default"/);
    // No template anywhere: no chat, and tokenizer_config.json is still a (hashed) source.
    put({ bos_token: '<s>' });
    src = await open();
    expect(src.chat).toBeUndefined();
    // chat_template.jinja (newer transformers) wins over tokenizer_config.json.
    put({ eos_token: '</s>', chat_template: 'old' });
    writeFileSync(join(hf, 'chat_template.jinja'), CHATML);
    src = await open();
    expect(src.chat).toEqual({ template: CHATML, eos_token: '</s>' });
    expect(src.files.map((f) => f.split('/').pop())).toEqual(expect.arrayContaining(['tokenizer_config.json', 'chat_template.jinja']));
  });

  it('a directory with neither file converts without a template', async () => {
    const hf = tmp();
    const s = synthModel(config, { seed: 3 });
    delete s.chat;
    await writeHfDir(s, hf);
    expect(readdirSync(hf)).not.toContain('tokenizer_config.json');
    const src = await openHfDir(hf);
    expect(src.chat).toBeUndefined();
    const r = await IebinReader.open(await iebin(src));
    expect(r.header.chat).toBeUndefined();
    await r.close();
  });

  it('refuses malformed or oversized templates with HF_BAD_TOKENIZER_CONFIG, naming the file and the field', async () => {
    const hf = tmp();
    await writeHfDir(synthModel(config, { seed: 3 }), hf);
    const cfgFile = join(hf, 'tokenizer_config.json');
    const bad = async (field: string | undefined, message: RegExp, file = cfgFile) => {
      const e = await caught(() => openHfDir(hf));
      expect(e.code).toBe('HF_BAD_TOKENIZER_CONFIG');
      expect(e.file).toBe(file);
      expect(e.field).toBe(field);
      expect(e.message).toMatch(message);
    };
    writeFileSync(cfgFile, '{"chat_template": ');
    await bad(undefined, /is not valid JSON/);
    writeFileSync(cfgFile, JSON.stringify({ chat_template: 7 }));
    await bad('chat_template', /must be a string, got number/);
    writeFileSync(cfgFile, JSON.stringify({ chat_template: 'x'.repeat(MAX_CHAT_TEMPLATE_BYTES + 10) }));
    await bad('chat_template', /more than the cap of 262144/);
    writeFileSync(cfgFile, JSON.stringify({ chat_template: [{ name: 'default', template: null }] }));
    await bad('chat_template[0].template', /must be a string, got null/);
    writeFileSync(cfgFile, JSON.stringify({ chat_template: [7] }));
    await bad('chat_template[0]', /must be an object/);
    writeFileSync(cfgFile, JSON.stringify({ chat_template: CHATML, eos_token: 5 }));
    await bad('eos_token', /must be a string, got number/);
    writeFileSync(cfgFile, JSON.stringify({ chat_template: CHATML }));
    const jinja = join(hf, 'chat_template.jinja');
    writeFileSync(jinja, Buffer.from([0x7b, 0x7b, 0xff, 0x7d, 0x7d]));
    await bad(undefined, /not valid UTF-8/, jinja);
    writeFileSync(jinja, 'y'.repeat(MAX_CHAT_TEMPLATE_BYTES + 1));
    const e = await caught(() => openHfDir(hf));
    expect(e.code).toBe('HF_BAD_TOKENIZER_CONFIG');
    expect(e.message).toMatch(/over the 262144-byte cap/);
  });

  it('pickChatTemplate and pickSpecialToken', () => {
    expect(pickChatTemplate(undefined)).toEqual({ template: null });
    expect(pickChatTemplate(CHATML)).toEqual({ template: CHATML });
    expect(pickChatTemplate({ default: CHATML })).toEqual({ problem: 'must be a string, got object', field: 'chat_template' });
    expect(pickSpecialToken({ content: '<s>' })).toEqual({ token: '<s>' });
    expect(pickSpecialToken(null)).toEqual({ token: undefined });
    expect(pickSpecialToken({ content: 1 })).toEqual({ problem: 'must be a string, got number' });
  });
});

describe('GGUF chat templates', () => {
  it('writeGguf writes tokenizer.chat_template; openGguf reads it with the BOS/EOS pieces; exportIebin carries it', async () => {
    const f = join(tmp(), 'm.gguf');
    await writeGguf(synthModel(config, { seed: 4 }), f);
    const src = await openGguf(f);
    expect(src.chat).toEqual({ template: SYNTH_CHAT_TEMPLATE, bos_token: '<s>', eos_token: '</s>' });
    const r = await IebinReader.open(await iebin(src));
    expect(r.header.chat).toEqual({ template: SYNTH_CHAT_TEMPLATE, bos_token: '<s>', eos_token: '</s>' });
    await r.close();
  });

  it('a GGUF without the key has no template; an oversized one is GGUF_BAD_METADATA on tokenizer.chat_template', async () => {
    const dir = tmp();
    const none = synthModel(config, { seed: 4 });
    delete none.chat;
    await writeGguf(none, join(dir, 'none.gguf'));
    const src = await openGguf(join(dir, 'none.gguf'));
    expect(src.chat).toBeUndefined();
    await src.close();
    const big = synthModel(config, { seed: 4 });
    big.chat = { template: 'z'.repeat(MAX_CHAT_TEMPLATE_BYTES + 1) };
    await writeGguf(big, join(dir, 'big.gguf'));
    const e = await caught(() => openGguf(join(dir, 'big.gguf')));
    expect(e.code).toBe('GGUF_BAD_METADATA');
    expect(e.field).toBe('tokenizer.chat_template');
    expect(e.message).toMatch(/more than the cap of 262144/);
  });
});
