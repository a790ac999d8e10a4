import { describe, expect, it } from 'vitest';
import { SchemaError } from './errors.js';
import { compileGrammar } from './grammar.js';
import { GrammarMatcher } from './matcher.js';
import { MAX_SCHEMA_DEPTH, schemaToGrammar } from './schema.js';
import { validate } from './test-validate.js';

const person = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 12 },
    age: { type: 'integer' },
    email: { type: 'string' },
    tags: { type: 'array', items: { type: 'string' }, maxItems: 3 },
  },
  required: ['name', 'age'],
};

/** Schemas with texts that must match and texts that must not (each checked against the validator too). */
const CASES: Array<{ what: string; schema: object | boolean; yes: string[]; no: string[] }> = [
  {
    what: 'required vs optional properties, in schema order',
    schema: person,
    yes: [
      '{"name":"Ann","age":3}',
      '{"name": "Ann", "age": -3, "tags": []}',
      '{\n  "name": "B",\n  "age": 0,\n  "email": "", "tags": ["x", "y"]\n}',
    ],
    no: [
      '{"age":3,"name":"Ann"}',
      '{"name":"Ann"}',
      '{"name":"","age":1}',
      '{"name":"Ann","age":1.5}',
      '{"name":"Ann","age":1,"x":1}',
      '{"name":"A","age":1,"tags":["a","b","c","d"]}',
    ],
  },
  {
    what: 'all properties optional',
    schema: { type: 'object', properties: { a: { type: 'boolean' }, b: { type: 'null' }, c: { type: 'number' } } },
    yes: ['{}', '{ }', '{"b":null}', '{"a":true,"c":1.5e3}', '{"a":false,"b":null,"c":-0.25}', '{"c":2}'],
    no: ['{,"b":null}', '{"b":null,}', '{"c":1,"a":true}', '{"a":1}'],
  },
  {
    what: 'nested objects and arrays of objects',
    schema: {
      type: 'object',
      properties: {
        user: {
          type: 'object',
          properties: { id: { type: 'integer' }, roles: { type: 'array', items: { enum: ['admin', 'dev'] }, minItems: 1 } },
          required: ['id', 'roles'],
        },
        items: {
          type: 'array',
          items: { type: 'object', properties: { sku: { type: 'string' }, qty: { type: 'integer' } }, required: ['sku', 'qty'] },
        },
      },
      required: ['user', 'items'],
    },
    yes: [
      '{"user":{"id":1,"roles":["dev"]},"items":[]}',
      '{"user":{"id":1,"roles":["admin","dev"]},"items":[{"sku":"a","qty":2},{"sku":"b","qty":0}]}',
    ],
    no: [
      '{"user":{"id":1,"roles":[]},"items":[]}',
      '{"user":{"id":1,"roles":["root"]},"items":[]}',
      '{"user":{"id":1,"roles":["dev"]},"items":[{"sku":"a"}]}',
    ],
  },
  {
    what: "type beside enum and const (OpenAI's examples' shape): the values of that type",
    schema: {
      type: 'object',
      properties: {
        unit: { type: 'string', enum: ['celsius', 'fahrenheit', 3] },
        n: { type: ['integer', 'null'], enum: [1, 2.5, null, 'x'] },
        kind: { type: 'string', const: 'point' },
      },
      required: ['unit', 'n', 'kind'],
    },
    yes: ['{"unit":"celsius","n":1,"kind":"point"}', '{"unit":"fahrenheit","n":null,"kind":"point"}'],
    no: ['{"unit":3,"n":1,"kind":"point"}', '{"unit":"celsius","n":2.5,"kind":"point"}', '{"unit":"celsius","n":"x","kind":"point"}'],
  },
  {
    what: 'enum of mixed values and const',
    schema: {
      type: 'object',
      properties: { kind: { const: 'point' }, level: { enum: [1, 'two', null, true, { x: [1] }] } },
      required: ['kind', 'level'],
    },
    yes: [
      '{"kind":"point","level":1}',
      '{"kind":"point","level":"two"}',
      '{"kind":"point","level":null}',
      '{"kind":"point","level":{"x":[1]}}',
    ],
    no: ['{"kind":"line","level":1}', '{"kind":"point","level":2}', '{"kind":"point","level":false}'],
  },
  {
    what: 'anyOf of different types',
    schema: { anyOf: [{ type: 'string', maxLength: 3 }, { type: 'integer' }, { type: 'array', items: { type: 'boolean' } }] },
    yes: ['"abc"', '42', '[true,false]', '[]'],
    no: ['"abcd"', '4.5', '[1]', 'null'],
  },
  {
    what: 'oneOf of disjoint objects (a tagged union)',
    schema: {
      oneOf: [
        { type: 'object', properties: { type: { const: 'circle' }, r: { type: 'number' } }, required: ['type', 'r'] },
        {
          type: 'object',
          properties: { type: { const: 'rect' }, w: { type: 'number' }, h: { type: 'number' } },
          required: ['type', 'w', 'h'],
        },
      ],
    },
    yes: ['{"type":"circle","r":1}', '{"type":"rect","w":1,"h":2}'],
    no: ['{"type":"circle","w":1,"h":2}', '{"type":"rect","r":1}'],
  },
  {
    what: '$ref to $defs, recursive (a tree)',
    schema: {
      $defs: {
        node: {
          type: 'object',
          properties: { v: { type: 'integer' }, kids: { type: 'array', items: { $ref: '#/$defs/node' } } },
          required: ['v'],
        },
      },
      $ref: '#/$defs/node',
    },
    yes: ['{"v":1}', '{"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4}]}]}'],
    no: ['{"v":1,"kids":[{"w":2}]}', '{"kids":[]}'],
  },
  {
    what: '$ref to definitions and type lists',
    schema: {
      definitions: { id: { type: ['string', 'null'] } },
      type: 'array',
      items: { $ref: '#/definitions/id' },
      minItems: 2,
      maxItems: 3,
    },
    yes: ['["a",null]', '[null, null, "x"]'],
    no: ['["a"]', '["a",1]', '[null,null,null,null]'],
  },
  {
    what: 'string lengths count characters, escapes included as one',
    schema: { type: 'string', minLength: 2, maxLength: 3 },
    yes: ['"ab"', '"日本語"', '"a\\n"', '"\\u00e9\\"x"'],
    no: ['"a"', '"abcd"', '"\\ud83d\\ude00"'],
  },
  {
    what: 'simple patterns (anchored and not)',
    schema: {
      type: 'object',
      properties: { zip: { type: 'string', pattern: '^\\d{5}(-\\d{4})?$' }, code: { type: 'string', pattern: '[A-Z]{2}' } },
      required: ['zip', 'code'],
    },
    yes: ['{"zip":"12345","code":"AB"}', '{"zip":"12345-6789","code":"xxCDyy"}'],
    no: ['{"zip":"1234","code":"AB"}', '{"zip":"12345","code":"ab"}', '{"zip":"123456","code":"AB"}'],
  },
  {
    what: 'formats date, date-time, uuid',
    schema: {
      type: 'array',
      items: {
        anyOf: [
          { type: 'string', format: 'date' },
          { type: 'string', format: 'uuid' },
          { type: 'string', format: 'date-time' },
        ],
      },
    },
    yes: ['["2024-01-31","2024-04-30","123e4567-e89b-12d3-a456-426614174000","2024-02-28T12:30:00Z","2024-02-01T00:00:00.5+05:30"]'],
    no: ['["2024-04-31"]', '["2024-02-29"]', '["2024-13-01"]', '["123e4567e89b12d3a456426614174000"]', '["2024-01-01T24:00:00Z"]'],
  },
  {
    what: 'additionalProperties as a schema (a map) and true / {}',
    schema: {
      type: 'object',
      properties: { counts: { type: 'object', additionalProperties: { type: 'integer' } }, meta: {}, any: true },
      required: ['counts'],
    },
    yes: ['{"counts":{}}', '{"counts":{"a":1,"b":2},"meta":[1,{"x":null}],"any":"s"}'],
    no: ['{"counts":{"a":"1"}}', '{"counts":[]}'],
  },
  {
    what: 'generic values: true schema',
    schema: true,
    yes: ['1', '"x"', '{"a":[true,false,null,{"b":-1.5e-7}]}', '[ ]'],
    no: ['{a:1}', "'x'", 'undefined', '[1,]'],
  },
];

describe('JSON schema -> grammar', () => {
  for (const c of CASES) {
    it(c.what, () => {
      const m = new GrammarMatcher(compileGrammar(schemaToGrammar(c.schema)));
      for (const t of c.yes) {
        expect(m.matches(t), `should match ${t}`).toBe(true);
        expect(validate(c.schema as never, JSON.parse(t)), t).toEqual([]);
      }
      for (const t of c.no) expect(m.matches(t), `should not match ${t}`).toBe(false);
    });
  }

  it('names rules after their place in the schema and ends the root at its closing brace', () => {
    const g = schemaToGrammar(person);
    expect(g).toMatch(/^root ::= "\{" ws root-from-0 ws "\}"$/m);
    expect(g).toMatch(/^root-name ::= "\\"" char\{1,12\} "\\""$/m);
    const m = new GrammarMatcher(compileGrammar(g));
    const s = m.stepBytes(m.initial, new TextEncoder().encode('{"name":"A","age":1}'));
    expect(m.accepting(s)).toBe(true);
    expect(m.canContinue(s)).toBe(false);
  });

  const errors: Array<[string, object | boolean, string, string | undefined, string]> = [
    ['minimum', { type: 'integer', minimum: 0 }, 'IE_SCHEMA_UNSUPPORTED', 'minimum', '#'],
    [
      'uniqueItems (nested)',
      { type: 'object', properties: { a: { type: 'array', uniqueItems: true } } },
      'IE_SCHEMA_UNSUPPORTED',
      'uniqueItems',
      '#/properties/a',
    ],
    ['an unknown keyword', { type: 'string', minLenght: 2 }, 'IE_SCHEMA_UNSUPPORTED', 'minLenght', '#'],
    ['a complex pattern', { type: 'string', pattern: '^(a)\\1$' }, 'IE_SCHEMA_UNSUPPORTED', 'pattern', '#'],
    ['a lookahead', { type: 'string', pattern: '^(?=a)' }, 'IE_SCHEMA_UNSUPPORTED', 'pattern', '#'],
    ['an unknown format', { type: 'string', format: 'email' }, 'IE_SCHEMA_UNSUPPORTED', 'format', '#'],
    ['allOf of two', { allOf: [{ type: 'string' }, { maxLength: 2 }] }, 'IE_SCHEMA_UNSUPPORTED', 'allOf', '#'],
    ['tuple items', { type: 'array', items: [{ type: 'string' }] }, 'IE_SCHEMA_UNSUPPORTED', 'items', '#'],
    [
      'additionalProperties true next to properties',
      { type: 'object', properties: { a: {} }, additionalProperties: true },
      'IE_SCHEMA_UNSUPPORTED',
      'additionalProperties',
      '#',
    ],
    ['a sibling of $ref', { $ref: '#/$defs/a', maxLength: 2, $defs: { a: { type: 'string' } } }, 'IE_SCHEMA_UNSUPPORTED', 'maxLength', '#'],
    ['false', false, 'IE_SCHEMA_INVALID', undefined, '#'],
    ['an unknown type', { type: 'float' }, 'IE_SCHEMA_INVALID', 'type', '#'],
    ['maxItems below minItems', { type: 'array', minItems: 3, maxItems: 1 }, 'IE_SCHEMA_INVALID', 'maxItems', '#'],
    ['a required property not declared', { type: 'object', properties: { a: {} }, required: ['b'] }, 'IE_SCHEMA_INVALID', 'required', '#'],
    ['an empty enum', { enum: [] }, 'IE_SCHEMA_INVALID', 'enum', '#'],
    ['an enum with no value of its type', { type: 'integer', enum: ['a', 1.5] }, 'IE_SCHEMA_INVALID', 'enum', '#'],
    ['a keyword other than type beside enum', { enum: ['a'], maxLength: 2 }, 'IE_SCHEMA_UNSUPPORTED', 'maxLength', '#'],
    ['a remote $ref', { $ref: 'https://example.com/s.json' }, 'IE_SCHEMA_BAD_REF', '$ref', '#'],
    ['a dangling $ref', { $ref: '#/$defs/missing' }, 'IE_SCHEMA_BAD_REF', '$ref', '#'],
  ];
  for (const [what, schema, code, keyword, path] of errors) {
    it(`refuses ${what}: ${code}${keyword ? ` naming ${keyword}` : ''}`, () => {
      let e: unknown;
      try {
        schemaToGrammar(schema);
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(SchemaError);
      const se = e as SchemaError;
      expect([se.code, se.keyword, se.path]).toEqual([code, keyword, path]);
      if (keyword) expect(se.message).toContain(keyword);
    });
  }

  it(`refuses subschemas nested deeper than ${MAX_SCHEMA_DEPTH} (naming the path) and compiles ones just inside`, () => {
    const nest = (n: number, leaf: object) => {
      let s: object = leaf;
      for (let i = 0; i < n; i++) s = i % 2 ? { type: 'array', items: s } : { anyOf: [s, { type: 'null' }] };
      return s;
    };
    const inside = schemaToGrammar(nest(MAX_SCHEMA_DEPTH - 1, { type: 'integer' }));
    expect(new GrammarMatcher(compileGrammar(inside)).isPrefix('[[[[')).toBe(true);
    for (const depth of [MAX_SCHEMA_DEPTH + 1, 5000]) {
      let e: unknown;
      try {
        schemaToGrammar(nest(depth, { type: 'integer' }));
      } catch (x) {
        e = x;
      }
      expect(e).toBeInstanceOf(SchemaError);
      expect((e as SchemaError).code).toBe('IE_SCHEMA_UNSUPPORTED');
      expect((e as SchemaError).message).toContain(`nested more than ${MAX_SCHEMA_DEPTH} deep`);
      expect((e as SchemaError).path).toMatch(/^#\/(anyOf\/0|items)\//);
    }
  });

  it('ignores annotations (title, description, default, examples, $schema, $comment)', () => {
    const g = schemaToGrammar({ $schema: 'x', title: 't', description: 'd', default: 1, examples: [1], $comment: 'c', type: 'integer' });
    expect(new GrammarMatcher(compileGrammar(g)).matches('17')).toBe(true);
  });
});
