/**
 * Tool calling: harmony's declarations against OpenAI's own renderer's output (the openai/harmony
 * repository's test data), the calls read back from harmony and Hermes-style answers, and forced
 * calls through the engine with a chat template.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SYNTH_PRESETS, exportIebin, synthModel } from '@ie/format';
import { Engine } from '../index.js';
import { HARMONY_SPECIALS, HarmonyReader, renderHarmony, type HarmonySpecial } from './harmony.js';
import {
  HermesTextFilter,
  JSON_CALLS,
  type ToolDefinition,
  checkTools,
  parseHermesCalls,
  parseJsonCalls,
  schemaToTypescript,
  templateCallSyntax,
} from './tools.js';

const WEATHER: ToolDefinition[] = [
  { name: 'get_location', description: 'Gets the location of the user.' },
  {
    name: 'get_current_weather',
    description: 'Gets the current weather in the provided location.',
    parameters: {
      type: 'object',
      properties: {
        location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' },
        format: { type: 'string', enum: ['celsius', 'fahrenheit'], default: 'celsius' },
      },
      required: ['location'],
    },
  },
  {
    name: 'get_multiple_weathers',
    description: 'Gets the current weather in the provided list of locations.',
    parameters: {
      type: 'object',
      properties: {
        locations: {
          type: 'array',
          items: { type: 'string' },
          description: 'List of city and state, e.g. ["San Francisco, CA", "New York, NY"]',
        },
        format: { type: 'string', enum: ['celsius', 'fahrenheit'], default: 'celsius' },
      },
      required: ['locations'],
    },
  },
];

const KITCHENSINK: ToolDefinition = {
  name: 'kitchensink',
  description: 'A function with various complex schemas.',
  parameters: {
    description: 'params object',
    type: 'object',
    properties: {
      string: { type: 'string', title: 'STRING', description: 'A string', examples: ['hello', 'world'] },
      string_nullable: { type: 'string', nullable: true, description: 'A nullable string', default: 'the default' },
      string_enum: { type: 'string', enum: ['a', 'b', 'c'] },
      oneof_string_or_number: {
        oneOf: [
          { type: 'string', default: 'default_string_in_oneof' },
          { type: 'number', description: 'numbers can happen too' },
        ],
        description: 'a oneof',
        default: 20,
      },
    },
  },
};

const SYSTEM_HIGH =
  '<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: 2025-06-28\n\nReasoning: high\n\n' +
  "# Valid channels: analysis, commentary, final. Channel must be included for every message.\nCalls to these tools must go to the commentary channel: 'functions'.<|end|>";

const WEATHER_NAMESPACE =
  '# Tools\n\n## functions\n\nnamespace functions {\n\n' +
  '// Gets the location of the user.\ntype get_location = () => any;\n\n' +
  '// Gets the current weather in the provided location.\ntype get_current_weather = (_: {\n// The city and state, e.g. San Francisco, CA\nlocation: string,\nformat?: "celsius" | "fahrenheit", // default: celsius\n}) => any;\n\n' +
  '// Gets the current weather in the provided list of locations.\ntype get_multiple_weathers = (_: {\n// List of city and state, e.g. ["San Francisco, CA", "New York, NY"]\nlocations: string[],\nformat?: "celsius" | "fahrenheit", // default: celsius\n}) => any;\n\n';

describe('harmony tool declarations', () => {
  it("are OpenAI's renderer's text for the same functions (openai/harmony test_render_functions_with_parameters)", () => {
    const p = renderHarmony(
      [
        { role: 'system', content: 'Always respond in riddles' },
        { role: 'user', content: 'What is the weather like in SF?' },
      ],
      { reasoningEffort: 'high', currentDate: '2025-06-28', tools: [...WEATHER, KITCHENSINK] },
    );
    expect(p).toBe(
      `${SYSTEM_HIGH}<|start|>developer<|message|># Instructions\n\nAlways respond in riddles\n\n${WEATHER_NAMESPACE}` +
        '// A function with various complex schemas.\ntype kitchensink = (_: // params object\n{\n' +
        '// STRING\n//\n// A string\n// Examples:\n// - "hello"\n// - "world"\nstring?: string,\n' +
        '// A nullable string\nstring_nullable?: string | null, // default: "the default"\n' +
        'string_enum?: "a" | "b" | "c",\n' +
        '// a oneof\n// default: 20\noneof_string_or_number?:\n | string // default: "default_string_in_oneof"\n | number // numbers can happen too\n,\n' +
        '}) => any;\n\n} // namespace functions<|end|><|start|>user<|message|>What is the weather like in SF?<|end|><|start|>assistant',
    );
  });

  it("write an earlier call and its result as harmony's function-calling example does (docs/format.md)", () => {
    const p = renderHarmony(
      [
        { role: 'system', content: 'Use a friendly tone.' },
        { role: 'user', content: 'What is the weather like in SF?' },
        {
          role: 'assistant',
          content: '',
          reasoning: 'Need to use function get_weather.',
          toolCalls: [{ name: 'get_weather', arguments: '{"location":"San Francisco"}' }],
        },
        { role: 'tool', name: 'get_weather', content: '{"sunny": true, "temperature": 20}' },
      ],
      { reasoningEffort: 'high', currentDate: '2025-06-28', tools: WEATHER },
    );
    expect(p).toBe(
      `${SYSTEM_HIGH}<|start|>developer<|message|># Instructions\n\nUse a friendly tone.\n\n${WEATHER_NAMESPACE}} // namespace functions<|end|>` +
        '<|start|>user<|message|>What is the weather like in SF?<|end|>' +
        '<|start|>assistant<|channel|>analysis<|message|>Need to use function get_weather.<|end|>' +
        '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location":"San Francisco"}<|call|>' +
        '<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>{"sunny": true, "temperature": 20}<|end|><|start|>assistant',
    );
    // No tools: no tools section and no commentary note, as before.
    expect(renderHarmony([{ role: 'user', content: 'hi' }], { tools: [] })).not.toMatch(/Tools|Calls to these tools/);
  });

  it('map schema types to TypeScript: integers as numbers, arrays of items, type lists, nested objects, unknown as any', () => {
    expect(schemaToTypescript({ type: 'integer' }, '')).toBe('number');
    expect(schemaToTypescript({ type: ['integer', 'null'] }, '')).toBe('number | null');
    expect(schemaToTypescript({ type: 'array' }, '')).toBe('Array<any>');
    expect(schemaToTypescript({ type: 'array', items: { type: 'boolean' } }, '')).toBe('boolean[]');
    expect(schemaToTypescript({}, '')).toBe('any');
    expect(
      schemaToTypescript(
        { type: 'object', properties: { at: { type: 'object', properties: { lat: { type: 'number' } }, required: ['lat'] } } },
        '',
      ),
    ).toBe('{\nat?: {\n    lat: number,\n    },\n}');
  });
});

/** A schema of `n` arrays, each the items of the one before. */
function deep(n: number): Record<string, unknown> {
  let v: Record<string, unknown> = { type: 'string' };
  for (let i = 0; i < n; i++) v = { type: 'array', items: v };
  return v;
}

describe('reading calls', () => {
  const ids = Object.fromEntries([...HARMONY_SPECIALS, '<|constrain|>'].map((s, i) => [s, 100000 + i])) as Record<HarmonySpecial, number>;
  const tokens = (text: string): number[] => {
    const out: number[] = [];
    for (let i = 0; i < text.length; ) {
      const sp = [...HARMONY_SPECIALS, '<|constrain|>'].find((s) => text.startsWith(s, i)) as HarmonySpecial | undefined;
      if (sp) {
        out.push(ids[sp]);
        i += sp.length;
      } else out.push(text.charCodeAt(i++));
    }
    return out;
  };
  const text = (t: number) => (t >= 100000 ? ([...HARMONY_SPECIALS, '<|constrain|>'][t - 100000] ?? '') : String.fromCharCode(t));

  it('harmony: a message to functions.* ended by <|call|> is a call, its recipient in the channel or the role part', () => {
    for (const answer of [
      '<|channel|>analysis<|message|>Need the weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>',
      ' to=functions.get_weather<|channel|>commentary json<|message|>{"city":"Paris"}<|call|>',
      '<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|> {"city":"Paris"}\n<|call|>',
    ]) {
      const r = new HarmonyReader(ids, text);
      for (const t of tokens(answer)) r.push(t);
      expect(r.ended, answer).toBe('call');
      expect(r.toolCalls, answer).toEqual([{ name: 'get_weather', arguments: '{"city":"Paris"}' }]);
    }
    const answer = new HarmonyReader(ids, text);
    for (const t of tokens('<|channel|>final<|message|>Sunny.<|return|>')) answer.push(t);
    expect(answer.toolCalls).toEqual([]);
  });

  it('hermes: <tool_call> blocks are calls (arguments as JSON text), the text around them the content', () => {
    expect(
      parseHermesCalls(
        'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',
      ),
    ).toEqual({
      content: 'Let me look.',
      calls: [
        { name: 'get_weather', arguments: '{"city":"Paris"}' },
        { name: 'get_time', arguments: '{}' },
      ],
    });
    // Cut before </tool_call>: the block still reads; one that does not parse stays text.
    expect(parseHermesCalls('<tool_call>{"name": "f", "arguments": "{\\"a\\":1}"}').calls).toEqual([{ name: 'f', arguments: '{"a":1}' }]);
    expect(parseHermesCalls('see <tool_call>{"name": oops}</tool_call>')).toEqual({
      content: 'see <tool_call>{"name": oops}</tool_call>',
      calls: [],
    });
    expect(parseHermesCalls('no calls here')).toEqual({ content: 'no calls here', calls: [] });
  });

  it('hermes: the streamed text stops at the first <tool_call>, however the pieces cut it', () => {
    const full = 'Checking <the> weather.<tool_call>{"name":"f","arguments":{}}</tool_call>';
    for (const size of [1, 2, 3, 5, 7, 100]) {
      let out = '';
      const f = new HermesTextFilter((t) => (out += t));
      for (let i = 0; i < full.length; i += size) f.push(full.slice(i, i + size));
      expect(out, String(size)).toBe('Checking <the> weather.');
      // Were it not a call after all (it did not parse), flush() passes the rest on.
      f.flush();
      expect(out, String(size)).toBe(full);
    }
    let out = '';
    const f = new HermesTextFilter((t) => (out += t));
    for (const piece of ['a <tool', '_c', 'all? no']) f.push(piece);
    f.flush();
    expect(out).toBe('a <tool_call? no');
  });

  it('json (Llama 3): the whole answer a {"name", "parameters"} object (after <|python_tag|>, several split by ;) is calls', () => {
    expect(parseJsonCalls(' {"name": "get_weather", "parameters": {"city": "Paris"}}')).toEqual({
      content: '',
      calls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }],
    });
    expect(parseJsonCalls('<|python_tag|>{"name": "a", "arguments": {}}; {"name": "b", "parameters": {"x": 1}}').calls).toEqual([
      { name: 'a', arguments: '{}' },
      { name: 'b', arguments: '{"x":1}' },
    ]);
    for (const text of ['The weather is fine.', '{"city": "Paris"}', '{"name": "a"} and more', '[1, 2]', '{"name": "Bob", "age": 30}'])
      expect(parseJsonCalls(text), text).toEqual({ content: text, calls: [] });
    // A JSON answer that names no function offered is an answer, not a call; a ; inside a string splits nothing.
    const offered = new Set(['run', 'get_weather']);
    expect(parseJsonCalls('{"name": "Bob", "parameters": {"age": 30}}', offered).calls).toEqual([]);
    expect(parseJsonCalls('{"name":"run","parameters":{"code":"a; {b}"}}', offered).calls).toEqual([
      { name: 'run', arguments: '{"code":"a; {b}"}' },
    ]);
    // Streamed: an answer that begins like a call is held to the end; any other streams as it comes.
    const run = (pieces: string[], calls: boolean) => {
      let out = '';
      const f = JSON_CALLS.textFilter((t) => (out += t));
      for (const p of pieces) f.push(p);
      const during = out;
      if (!calls) f.flush();
      return [during, out];
    };
    expect(run(['  {"name"', ': "a", "parameters": {}}'], true)).toEqual(['', '']);
    expect(run(['<|pyth', 'on_tag|>{"name": "a"}'], true)).toEqual(['', '']);
    expect(run(['  {not json'], false)).toEqual(['', '  {not json']);
    expect(run(['  Sun', 'ny.'], false)).toEqual(['  Sunny.', '  Sunny.']);
    expect(run(['<b>', 'bold'], false)).toEqual(['<b>bold', '<b>bold']);
  });

  it('a template’s syntax: <tool_call> blocks, or a call’s "parameters" JSON; neither without `tools`', () => {
    expect(templateCallSyntax('{% if tools %}…<tool_call>{% endif %}')).toBe('hermes');
    expect(templateCallSyntax('{% if tools %}{"name": …, "parameters": …}{% endif %}')).toBe('json');
    expect(templateCallSyntax('{{ messages }}"parameters"<tool_call>')).toBeUndefined();
    expect(templateCallSyntax('{% if tools %}{{ tools }}{% endif %}')).toBeUndefined();
  });

  it('refuses malformed tools and choices, naming the field', () => {
    const bad: Array<[unknown, unknown, string]> = [
      ['x', undefined, 'tools'],
      [[{ name: 'a b' }], undefined, 'tools[0].name'],
      [[{ name: 'a' }, { name: 'a' }], undefined, 'tools[1].name'],
      [[{ name: 'a', parameters: [] }], undefined, 'tools[0].parameters'],
      [[{ name: 'a' }], 'sometimes', 'toolChoice'],
      [[{ name: 'a' }], { name: 'b' }, 'toolChoice.name'],
      [[], 'required', 'toolChoice'],
      // Deeper than any schema needs: refused before anything recurses into it.
      [[{ name: 'a', parameters: { type: 'object', properties: { x: deep(5000) } } }], undefined, 'tools[0].parameters'],
    ];
    for (const [tools, choice, option] of bad)
      expect(() => checkTools(tools, choice), option).toThrow(expect.objectContaining({ code: 'IE_INVALID_OPTION', option }));
    expect(checkTools([{ name: 'a' }], undefined).choice).toBe('auto');
  });
});

/** A Hermes-style template (as Qwen2.5's, cut down): the functions in the system turn, calls and results as tags. */
const HERMES_TEMPLATE = [
  '{%- if tools %}<|system|>\n# Tools\n<tools>{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools>\n',
  '</s>\n{%- endif %}',
  '{%- for m in messages %}',
  '{%- if m.role == "tool" %}<|user|>\n<tool_response>{{ m.content }}</tool_response></s>\n',
  '{%- elif m.tool_calls %}<|assistant|>\n{% for c in m.tool_calls %}<tool_call>{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}</tool_call>{% endfor %}</s>\n',
  '{%- else %}<|{{ m.role }}|>\n{{ m.content }}</s>\n{%- endif %}',
  '{%- endfor %}{%- if add_generation_prompt %}<|assistant|>\n{%- endif %}',
].join('');

/** A Llama 3.1-style template, cut down: the functions as JSON in the user turn, a call as {"name", "parameters"}. */
const LLAMA3_TEMPLATE = [
  '{%- for m in messages %}',
  '{%- if m.role == "tool" %}<|user|>\n{{ m.content }}</s>\n',
  '{%- elif m.tool_calls %}<|assistant|>\n{% for c in m.tool_calls %}{"name": "{{ c.function.name }}", "parameters": {{ c.function.arguments | tojson }}}{% endfor %}</s>\n',
  '{%- else %}<|{{ m.role }}|>\n{% if tools and loop.last %}Functions:{% for t in tools %} {{ t.function.name }}{% endfor %}\n{% endif %}{{ m.content }}</s>\n{%- endif %}',
  '{%- endfor %}{%- if add_generation_prompt %}<|assistant|>\n{%- endif %}',
].join('');

describe('tool calls through a chat template (Hermes style)', () => {
  const tools: ToolDefinition[] = [
    {
      name: 'get_weather',
      description: 'The weather in a city.',
      parameters: {
        type: 'object',
        properties: { city: { type: 'string', maxLength: 12 }, days: { type: 'integer' } },
        required: ['city', 'days'],
        additionalProperties: false,
      },
    },
    { name: 'get_time' },
  ];

  async function engineWith(template: string) {
    const m = synthModel(SYNTH_PRESETS.tiny.config, { seed: 21 });
    m.chat = { ...(m.chat ?? {}), template };
    const dir = mkdtempSync(join(tmpdir(), 'ie-tools-'));
    await exportIebin(m, dir, { converter: 'test' });
    return Engine.load(dir);
  }

  it('render the functions and an earlier call through the template, and a forced call follows its schema', async () => {
    await using e = await engineWith(HERMES_TEMPLATE);
    const messages = [
      { role: 'user' as const, content: 'weather?' },
      { role: 'assistant' as const, content: '', toolCalls: [{ name: 'get_weather', arguments: '{"city":"Oslo","days":1}' }] },
      { role: 'tool' as const, content: 'rain', name: 'get_weather', toolCallId: 'call_1' },
      { role: 'user' as const, content: 'and tomorrow?' },
    ];
    const p = e.chatPrompt(messages, { tools });
    expect(p.tools).toEqual({ syntax: 'hermes', names: ['get_weather', 'get_time'] });
    expect(p.text).toContain('{"type": "function", "function": {"name": "get_weather", "description": "The weather in a city."');
    // The arguments reach the template as an object, as transformers passes them.
    expect(p.text).toContain('<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo", "days": 1}}</tool_call>');
    expect(p.text).toContain('<tool_response>rain</tool_response>');
    // toolChoice 'none': the functions are not offered.
    expect(e.chatPrompt(messages, { tools, toolChoice: 'none' }).text).not.toContain('<tools>');

    // Forced calls on a short conversation: the synthetic vocabulary spells JSON nearly a character a token.
    const ask = [{ role: 'user' as const, content: 'weather?' }];
    const small: ToolDefinition[] = [
      {
        name: 'get_weather',
        parameters: {
          type: 'object',
          properties: { city: { type: 'string', maxLength: 8 }, days: { type: 'integer' } },
          required: ['city', 'days'],
        },
      },
      { name: 'get_time' },
    ];
    for (const seed of [1, 2, 3]) {
      let streamed = '';
      const r = await e.chat(ask, {
        tools: small,
        toolChoice: { name: 'get_weather' },
        temperature: 1,
        seed,
        maxTokens: 300,
        onText: (t) => (streamed += t),
      });
      expect(r.ended, `${r.stopReason} ${r.tokens.length} ${JSON.stringify(r.final)} ${r.metrics.promptTokens}`).toBe('call');
      expect(r.toolCalls).toHaveLength(1);
      expect(r.toolCalls[0].name).toBe('get_weather');
      const args = JSON.parse(r.toolCalls[0].arguments);
      expect(Object.keys(args)).toEqual(['city', 'days']);
      expect(typeof args.city).toBe('string');
      // maxLength counts characters (code points), as JSON Schema does.
      expect([...args.city].length).toBeLessThanOrEqual(8);
      expect(Number.isInteger(args.days)).toBe(true);
      expect(r.final).toBe('');
      expect(streamed).toBe('');
    }
    // 'required' among several: a call to one of them, whichever the model picks.
    const r = await e.chat(ask, { tools: small, toolChoice: 'required', temperature: 1, seed: 4, maxTokens: 300 });
    expect(r.ended).toBe('call');
    expect(['get_weather', 'get_time']).toContain(r.toolCalls[0]?.name);
  });

  it('Llama 3 style: the functions through the template, a forced call as {"name", "parameters"} JSON', async () => {
    await using e = await engineWith(LLAMA3_TEMPLATE);
    const small: ToolDefinition[] = [
      { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 8 } }, required: ['city'] } },
      { name: 'get_time' },
    ];
    const ask = [{ role: 'user' as const, content: 'weather?' }];
    const p = e.chatPrompt(ask, { tools: small });
    expect(p.tools).toEqual({ syntax: 'json', names: ['get_weather', 'get_time'] });
    expect(p.text).toContain('Functions: get_weather get_time');
    const earlier = e.chatPrompt(
      [
        ...ask,
        { role: 'assistant', content: '', toolCalls: [{ name: 'get_weather', arguments: '{"city":"Oslo"}' }] },
        { role: 'tool', content: 'rain', name: 'get_weather' },
      ],
      { tools: small },
    );
    expect(earlier.text).toContain('{"name": "get_weather", "parameters": {"city": "Oslo"}}</s>');
    for (const [choice, seed] of [
      [{ name: 'get_weather' }, 1],
      ['required', 2],
    ] as const) {
      let streamed = '';
      const r = await e.chat(ask, {
        tools: small,
        toolChoice: choice,
        temperature: 1,
        seed,
        maxTokens: 300,
        onText: (t) => (streamed += t),
      });
      expect(r.ended).toBe('call');
      expect(r.toolCalls).toHaveLength(1);
      if (typeof choice === 'object') expect(r.toolCalls[0].name).toBe('get_weather');
      const args = JSON.parse(r.toolCalls[0].arguments);
      if (r.toolCalls[0].name === 'get_weather') expect([...args.city].length).toBeLessThanOrEqual(8);
      else expect(args).toEqual({});
      expect([r.final, streamed]).toEqual(['', '']);
    }
    // 'auto': a random model answers in text; streamed as it comes, the whole answer its content.
    let streamed = '';
    const free = await e.chat(ask, { tools: small, temperature: 0, maxTokens: 8, onText: (t) => (streamed += t) });
    expect(free.toolCalls).toEqual([]);
    expect(streamed).toBe(free.final);
  });

  it('refuse tools where the template has no call format, and a forced call combined with another constraint', async () => {
    await using plain = await engineWith('{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}</s>\n{% endfor %}<|assistant|>\n');
    expect(() => plain.chatPrompt([{ role: 'user', content: 'hi' }], { tools })).toThrow(
      expect.objectContaining({ code: 'IE_CHAT_TOOLS_UNSUPPORTED' }),
    );
    await using e = await engineWith(HERMES_TEMPLATE);
    expect(() => e.chatPrompt([{ role: 'user', content: 'hi' }], { tools, toolChoice: 'required', json: true })).toThrow(
      expect.objectContaining({ code: 'IE_INVALID_OPTION', option: 'toolChoice' }),
    );
    expect(() => e.chatPrompt([{ role: 'user', content: 'hi' }], { toolChoice: 'auto' })).toThrow(
      expect.objectContaining({ option: 'toolChoice' }),
    );
    // A forced call's schema is compiled when the prompt is made: a keyword ie cannot enforce names the function.
    const bounded = [{ name: 'f', parameters: { type: 'object', properties: { n: { type: 'integer', minimum: 3 } } } }];
    expect(() => e.chatPrompt([{ role: 'user', content: 'hi' }], { tools: bounded, toolChoice: 'required' })).toThrow(
      expect.objectContaining({ code: 'IE_INVALID_OPTION', option: 'tools[0].parameters', message: expect.stringMatching(/minimum/) }),
    );
    expect(e.chatPrompt([{ role: 'user', content: 'hi' }], { tools: bounded }).tools).toEqual({ syntax: 'hermes', names: ['f'] });
    expect(() => e.chatPrompt([{ role: 'assistant', content: '', toolCalls: [{ name: 'x y', arguments: '{}' }] }])).toThrow(
      expect.objectContaining({ option: 'messages[0].toolCalls[0].name' }),
    );
    await expect(e.chat([{ role: 'user', content: 'hi' }], { tools, logprobs: true })).rejects.toMatchObject({ option: 'logprobs' });
  });
});
