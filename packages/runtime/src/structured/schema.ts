/**
 * JSON schema -> GBNF. Each subschema becomes a rule named after where it sits (`root-address-city`),
 * so the grammar can be read next to its schema. Objects emit their properties in schema order,
 * required ones always and optional ones optionally; every keyword is either compiled, an
 * annotation with no effect on validity, or refused with IE_SCHEMA_UNSUPPORTED naming it: a
 * keyword is never dropped, because dropping one would let the output fail validation.
 *
 * oneOf is compiled as anyOf: a value matching two branches would fail strict oneOf validation,
 * so give oneOf branches that exclude each other (different types, consts or required keys).
 */
import { SchemaError } from './errors.js';
import { primitiveRules } from './json-grammar.js';
import { patternGrammar } from './pattern.js';

type Schema = boolean | Record<string, unknown>;

/** Keywords that describe a schema without constraining values. */
const ANNOTATIONS = new Set([
  '$schema',
  '$id',
  '$comment',
  'title',
  'description',
  'default',
  'examples',
  'deprecated',
  'readOnly',
  'writeOnly',
  '$defs',
  'definitions',
]);
const BY_TYPE: Record<string, readonly string[]> = {
  object: ['properties', 'required', 'additionalProperties'],
  array: ['items', 'minItems', 'maxItems'],
  string: ['minLength', 'maxLength', 'pattern', 'format'],
  number: [],
  integer: [],
  boolean: [],
  null: [],
};
const TYPES = Object.keys(BY_TYPE);
const TYPED = new Set(Object.values(BY_TYPE).flat());
const FORMATS: Record<string, string> = {
  date: 'date',
  time: 'time',
  'date-time': 'date ("T" | "t") time',
  uuid: 'hex8 "-" hex4 "-" hex4 "-" hex4 "-" hex4 hex8',
};
const FORMAT_RULES: Record<string, string> = {
  // Days per month exactly (February to 28: every generated date is valid in every year).
  date: '[0-9]{4} "-" (("0" [13578] | "1" [02]) "-" ("0" [1-9] | [12] [0-9] | "3" [01]) | ("0" [469] | "11") "-" ("0" [1-9] | [12] [0-9] | "30") | "02" "-" ("0" [1-9] | "1" [0-9] | "2" [0-8]))',
  time: '([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{1,6})? ("Z" | "z" | [+-] ([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9])',
  hex4: '[0-9a-fA-F]{4}',
  hex8: '[0-9a-fA-F]{8}',
};

const quote = (s: string) =>
  `"${Array.from(s, (ch) => {
    const cp = ch.codePointAt(0) as number;
    if (ch === '"' || ch === '\\') return `\\${ch}`;
    if (cp < 0x20 || cp === 0x7f) return `\\x${cp.toString(16).padStart(2, '0')}`;
    return ch;
  }).join('')}"`;

/** A GBNF literal of a JSON value's text. */
const literal = (v: unknown) => quote(JSON.stringify(v));

/** Subschemas nested deeper than this are refused (the compiler recurses once per level). */
export const MAX_SCHEMA_DEPTH = 128;

class SchemaCompiler {
  private depth = 0;
  private readonly rules = new Map<string, string>();
  private readonly primitives = new Set<string>();
  private readonly refs = new Map<string, string>();

  constructor(private readonly rootSchema: Schema) {}

  compile(): string {
    const body = this.visit(this.rootSchema, '#', 'root');
    if (body !== 'root') this.rules.set('root', body);
    const lines = [`root ::= ${this.rules.get('root')}`];
    for (const [name, b] of this.rules) if (name !== 'root') lines.push(`${name} ::= ${b}`);
    const formats = [...this.primitives].filter((p) => FORMAT_RULES[p]);
    for (const f of formats) lines.push(`${f} ::= ${FORMAT_RULES[f]}`);
    const prims = primitiveRules([...this.primitives].filter((p) => !FORMAT_RULES[p]));
    return `${lines.join('\n')}\n${prims ? `${prims}\n` : ''}`;
  }

  private fail(
    code: 'IE_SCHEMA_UNSUPPORTED' | 'IE_SCHEMA_INVALID' | 'IE_SCHEMA_BAD_REF',
    path: string,
    keyword: string | undefined,
    why: string,
  ): never {
    throw new SchemaError(code, path, keyword, why);
  }

  private prim(name: string): string {
    this.primitives.add(name);
    return name;
  }

  /** A fresh rule name from a hint (rule names are [A-Za-z0-9-]). */
  private name(hint: string): string {
    const base =
      hint
        .replace(/[^A-Za-z0-9-]+/g, '-')
        .replace(/-+/g, '-')
        .replace(/^-|-$/g, '') || 'rule';
    let n = base;
    for (let i = 2; this.rules.has(n) || this.refs.has(`name:${n}`) || RESERVED.has(n); i++) n = `${base}-${i}`;
    this.refs.set(`name:${n}`, n);
    return n;
  }

  /** Defines a rule for `body` under a name from `hint` and returns the name. */
  private rule(hint: string, body: string): string {
    const n = this.name(hint);
    this.rules.set(n, body);
    return n;
  }

  /** A GBNF expression for `schema` (found at JSON pointer `path`); `hint` names the rules it makes. */
  visit(schema: unknown, path: string, hint: string): string {
    if (this.depth >= MAX_SCHEMA_DEPTH)
      this.fail('IE_SCHEMA_UNSUPPORTED', path, undefined, `subschemas nested more than ${MAX_SCHEMA_DEPTH} deep are not supported`);
    this.depth++;
    try {
      return this.visitAt(schema, path, hint);
    } finally {
      this.depth--;
    }
  }

  private visitAt(schema: unknown, path: string, hint: string): string {
    if (schema === true) return this.prim('value');
    if (schema === false) this.fail('IE_SCHEMA_INVALID', path, undefined, 'the schema false matches no value');
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema))
      this.fail(
        'IE_SCHEMA_INVALID',
        path,
        undefined,
        `a schema must be an object or a boolean, not ${Array.isArray(schema) ? 'an array' : typeof schema}`,
      );
    const s = schema as Record<string, unknown>;
    const keys = Object.keys(s).filter((k) => !ANNOTATIONS.has(k));
    for (const k of keys)
      if (!TYPED.has(k) && !['type', 'enum', 'const', 'anyOf', 'oneOf', 'allOf', '$ref'].includes(k))
        this.fail('IE_SCHEMA_UNSUPPORTED', path, k, `the keyword ${k} is not supported${HINTS[k] ? ` (${HINTS[k]})` : ''}`);
    const only = (k: string, beside: readonly string[] = []) => {
      const other = keys.find((x) => x !== k && !beside.includes(x));
      if (other !== undefined)
        this.fail('IE_SCHEMA_UNSUPPORTED', path, other, `${other} next to ${k} is not supported; move it into the ${k} branches`);
    };
    // `type` beside const / enum ({"type": "string", "enum": [...]}, OpenAI's own examples' shape):
    // the values of that type; values of another type match nothing.
    const ofType = (values: readonly unknown[], k: 'const' | 'enum'): unknown[] => {
      if (!('type' in s)) return [...values];
      const types = Array.isArray(s.type) ? (s.type as unknown[]) : [s.type];
      for (const t of types)
        if (typeof t !== 'string' || !TYPES.includes(t))
          this.fail('IE_SCHEMA_INVALID', path, 'type', `unknown type ${JSON.stringify(t)}; one of ${TYPES.join(', ')}`);
      const kept = values.filter((v) => types.some((t) => jsonTypeMatches(v, t as string)));
      if (kept.length === 0)
        this.fail('IE_SCHEMA_INVALID', path, k, `no ${k} value is of the type ${JSON.stringify(s.type)} beside it, so nothing matches`);
      return kept;
    };

    if ('$ref' in s) {
      only('$ref');
      return this.ref(s.$ref, path);
    }
    if ('const' in s) {
      only('const', ['type']);
      return literal(ofType([s.const], 'const')[0]);
    }
    if ('enum' in s) {
      only('enum', ['type']);
      if (!Array.isArray(s.enum) || s.enum.length === 0) this.fail('IE_SCHEMA_INVALID', path, 'enum', 'enum must be a non-empty array');
      return this.rule(hint, [...new Set(ofType(s.enum, 'enum').map(literal))].join(' | '));
    }
    for (const k of ['anyOf', 'oneOf', 'allOf'] as const) {
      if (!(k in s)) continue;
      only(k);
      const list = s[k];
      if (!Array.isArray(list) || list.length === 0) this.fail('IE_SCHEMA_INVALID', path, k, `${k} must be a non-empty array of schemas`);
      if (k === 'allOf') {
        if (list.length !== 1)
          this.fail('IE_SCHEMA_UNSUPPORTED', path, k, 'allOf with more than one schema is not supported; merge them into one');
        return this.visit(list[0], `${path}/allOf/0`, hint);
      }
      const alts = list.map((sub, i) => this.visit(sub, `${path}/${k}/${i}`, `${hint}-${i}`));
      return this.rule(hint, alts.join(' | '));
    }

    let types: string[];
    if ('type' in s) {
      const t = s.type;
      types = Array.isArray(t) ? (t as unknown[]).map(String) : [String(t)];
      for (const x of types)
        if (!TYPES.includes(x))
          this.fail('IE_SCHEMA_INVALID', path, 'type', `unknown type ${JSON.stringify(x)}; one of ${TYPES.join(', ')}`);
      if (types.length === 0) this.fail('IE_SCHEMA_INVALID', path, 'type', 'type is an empty list');
    } else {
      // No type: the one its keywords imply (a subset of what the schema allows, so still valid).
      types = TYPES.filter((t) => t !== 'integer' && BY_TYPE[t].length > 0 && BY_TYPE[t].some((k) => k in s));
      if (types.length === 0) return this.prim('value');
    }
    const alts = [...new Set(types)].map((t) => this.typed(t, s, path, types.length > 1 ? `${hint}-${t}` : hint));
    return alts.length === 1 ? alts[0] : this.rule(hint, alts.join(' | '));
  }

  private ref(ref: unknown, path: string): string {
    if (typeof ref !== 'string' || !ref.startsWith('#'))
      this.fail(
        'IE_SCHEMA_BAD_REF',
        path,
        '$ref',
        `only local references (#, #/$defs/Name, #/definitions/Name) are supported, not ${JSON.stringify(ref)}`,
      );
    const known = this.refs.get(ref);
    if (known) return known;
    let target: unknown = this.rootSchema;
    const parts = ref === '#' ? [] : ref.slice(1).split('/').slice(1);
    if (ref !== '#' && !ref.startsWith('#/')) this.fail('IE_SCHEMA_BAD_REF', path, '$ref', `${ref} is not a JSON pointer (#/...)`);
    for (const raw of parts) {
      const key = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
      if (typeof target !== 'object' || target === null || !(key in target))
        this.fail('IE_SCHEMA_BAD_REF', path, '$ref', `${ref} points at nothing (no ${JSON.stringify(key)})`);
      target = (target as Record<string, unknown>)[key];
    }
    // Named before it is compiled, so recursive schemas (a tree's children) refer back to it.
    const name = ref === '#' ? 'root' : this.name(`ref-${parts[parts.length - 1] ?? 'root'}`);
    this.refs.set(ref, name);
    if (ref === '#') return 'root';
    this.rules.set(name, '""');
    const body = this.visit(target, ref, name);
    this.rules.set(name, body);
    return name;
  }

  private typed(type: string, s: Record<string, unknown>, path: string, hint: string): string {
    switch (type) {
      case 'string':
        return this.string(s, path, hint);
      case 'number':
      case 'integer':
      case 'boolean':
      case 'null':
        return this.prim(type);
      case 'array':
        return this.array(s, path, hint);
      default:
        return this.object(s, path, hint);
    }
  }

  private count(s: Record<string, unknown>, k: string, path: string): number | undefined {
    const v = s[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0)
      this.fail('IE_SCHEMA_INVALID', path, k, `${k} must be a non-negative integer`);
    return v;
  }

  private bounds(s: Record<string, unknown>, minKey: string, maxKey: string, path: string): [number, number] {
    const min = this.count(s, minKey, path) ?? 0;
    const max = this.count(s, maxKey, path) ?? Number.POSITIVE_INFINITY;
    if (max < min) this.fail('IE_SCHEMA_INVALID', path, maxKey, `${maxKey} ${max} is below ${minKey} ${min}: no value can satisfy both`);
    return [min, max];
  }

  private string(s: Record<string, unknown>, path: string, hint: string): string {
    const [min, max] = this.bounds(s, 'minLength', 'maxLength', path);
    const bounded = min > 0 || max !== Number.POSITIVE_INFINITY;
    if (s.pattern !== undefined) {
      if (typeof s.pattern !== 'string') this.fail('IE_SCHEMA_INVALID', path, 'pattern', 'pattern must be a string');
      if (bounded || s.format !== undefined)
        this.fail(
          'IE_SCHEMA_UNSUPPORTED',
          path,
          'pattern',
          'pattern together with minLength/maxLength/format is not supported; fold the lengths into the pattern',
        );
      const body = patternGrammar(s.pattern, (why) =>
        this.fail('IE_SCHEMA_UNSUPPORTED', path, 'pattern', `the pattern ${JSON.stringify(s.pattern)} ${why}`),
      );
      return this.rule(hint, `"\\"" ${body} "\\""`);
    }
    if (s.format !== undefined) {
      const f = FORMATS[String(s.format)];
      if (!f)
        this.fail(
          'IE_SCHEMA_UNSUPPORTED',
          path,
          'format',
          `format ${JSON.stringify(s.format)} is not supported; supported: ${Object.keys(FORMATS).join(', ')}`,
        );
      if (bounded) this.fail('IE_SCHEMA_UNSUPPORTED', path, 'format', 'format together with minLength/maxLength is not supported');
      for (const r of ['date', 'time', 'hex4', 'hex8']) if (f.includes(r)) this.prim(r);
      return this.rule(hint, `"\\"" ${f} "\\""`);
    }
    if (!bounded) return this.prim('string');
    this.prim('char');
    return this.rule(hint, `"\\"" char{${min},${max === Number.POSITIVE_INFINITY ? '' : max}} "\\""`);
  }

  private array(s: Record<string, unknown>, path: string, hint: string): string {
    const [min, max] = this.bounds(s, 'minItems', 'maxItems', path);
    if (Array.isArray(s.items)) this.fail('IE_SCHEMA_UNSUPPORTED', path, 'items', 'items as an array (tuples) is not supported');
    const item = s.items === undefined ? this.prim('value') : this.visit(s.items, `${path}/items`, `${hint}-item`);
    this.prim('ws');
    if (max === 0) return this.rule(hint, '"[" ws "]"');
    const more = `(ws "," ws ${item}){${Math.max(min - 1, 0)},${max === Number.POSITIVE_INFINITY ? '' : max - 1}}`;
    const items = `${item} ${more} ws`;
    return this.rule(hint, `"[" ws ${min > 0 ? items : `(${items})?`} "]"`);
  }

  private object(s: Record<string, unknown>, path: string, hint: string): string {
    const props = s.properties;
    if (props !== undefined && (typeof props !== 'object' || props === null || Array.isArray(props)))
      this.fail('IE_SCHEMA_INVALID', path, 'properties', 'properties must be an object');
    const required = s.required ?? [];
    if (!Array.isArray(required) || required.some((r) => typeof r !== 'string'))
      this.fail('IE_SCHEMA_INVALID', path, 'required', 'required must be an array of strings');
    const names = Object.keys((props ?? {}) as object);
    const extra = s.additionalProperties;
    this.prim('ws');
    if (names.length === 0) {
      if (required.length > 0)
        this.fail(
          'IE_SCHEMA_UNSUPPORTED',
          path,
          'required',
          'required without properties is not supported; declare the required properties',
        );
      if (extra === false) return this.rule(hint, '"{" ws "}"');
      if (extra === undefined || extra === true) return this.prim('object');
      const value = this.visit(extra, `${path}/additionalProperties`, `${hint}-value`);
      const kv = this.rule(`${hint}-kv`, `${this.prim('string')} ws ":" ws ${value}`);
      return this.rule(hint, `"{" ws (${kv} (ws "," ws ${kv})* ws)? "}"`);
    }
    if (extra !== undefined && extra !== false)
      this.fail(
        'IE_SCHEMA_UNSUPPORTED',
        path,
        'additionalProperties',
        'additionalProperties other than false next to properties is not supported',
      );
    for (const r of required)
      if (!names.includes(r))
        this.fail(
          'IE_SCHEMA_INVALID',
          path,
          'required',
          `required property ${JSON.stringify(r)} is not in properties (and no other property may appear)`,
        );
    const p = props as Record<string, unknown>;
    const kvs = names.map((n) => {
      const v = this.visit(p[n], `${path}/properties/${n.replaceAll('~', '~0').replaceAll('/', '~1')}`, `${hint}-${n}`);
      return { kv: `${literal(n)} ws ":" ws ${v}`, req: required.includes(n) };
    });
    // rest(i): properties i.. after one was written (each behind a comma); first(i): none written yet.
    const k = kvs.length;
    const rest: string[] = new Array(k + 1).fill('');
    for (let i = k - 1; i >= 0; i--) {
      const piece = `ws "," ws ${kvs[i].kv}`;
      const body = `${kvs[i].req ? piece : `(${piece})?`}${rest[i + 1] ? ` ${rest[i + 1]}` : ''}`;
      rest[i] = i === k - 1 ? body : this.rule(`${hint}-rest-${i}`, body);
    }
    const first: string[] = new Array(k + 1).fill('');
    for (let i = k - 1; i >= 0; i--) {
      const take = `${kvs[i].kv}${rest[i + 1] ? ` ${rest[i + 1]}` : ''}`;
      const body = kvs[i].req ? take : first[i + 1] ? `${take} | ${first[i + 1]}` : `${take} | ""`;
      first[i] = this.rule(`${hint}-from-${i}`, body);
    }
    return this.rule(hint, `"{" ws ${first[0]} ws "}"`);
  }
}

/** Names the primitives and format rules own. */
const RESERVED = new Set([
  'ws',
  'char',
  'string',
  'integer',
  'number',
  'boolean',
  'null',
  'value',
  'object',
  'member',
  'array',
  'date',
  'time',
  'hex4',
  'hex8',
]);

const HINTS: Record<string, string> = {
  minimum: 'numeric bounds are not compiled',
  maximum: 'numeric bounds are not compiled',
  exclusiveMinimum: 'numeric bounds are not compiled',
  exclusiveMaximum: 'numeric bounds are not compiled',
  multipleOf: 'numeric constraints are not compiled',
  prefixItems: 'tuples are not supported',
  uniqueItems: 'a grammar cannot see earlier items',
  patternProperties: 'use properties or additionalProperties',
  not: 'negation is not supported',
  if: 'conditionals are not supported',
};

/**
 * The GBNF for a JSON schema (`root` is the value). Throws {@link SchemaError}: IE_SCHEMA_UNSUPPORTED
 * naming the keyword for anything it cannot compile, IE_SCHEMA_INVALID, IE_SCHEMA_BAD_REF.
 */
export function schemaToGrammar(schema: object | boolean): string {
  return new SchemaCompiler(schema as Schema).compile();
}

/** Whether a JSON value is of a JSON Schema type (an integer is a number too). */
function jsonTypeMatches(v: unknown, t: string): boolean {
  switch (t) {
    case 'null':
      return v === null;
    case 'boolean':
      return typeof v === 'boolean';
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'array':
      return Array.isArray(v);
    default:
      return typeof v === 'object' && v !== null && !Array.isArray(v);
  }
}
