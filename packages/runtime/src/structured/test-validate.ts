/**
 * A small JSON schema validator for the tests (not exported from the package), written from the
 * spec independently of the compiler: what it checks is what the compiler claims to enforce.
 */
type S = boolean | Record<string, unknown>;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function typeOk(t: string, v: unknown): boolean {
  switch (t) {
    case 'object':
      return isObj(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'null':
      return v === null;
    default:
      return false;
  }
}

function validDate(s: string): boolean {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const days = [31, y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  return mo >= 1 && mo <= 12 && d >= 1 && d <= days[mo - 1];
}
const TIME = /^([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?([zZ]|[+-]([01]\d|2[0-3]):[0-5]\d)$/;
const FORMATS: Record<string, (s: string) => boolean> = {
  date: validDate,
  time: (s) => TIME.test(s),
  'date-time': (s) => {
    const i = s.search(/[tT]/);
    return i === 10 && validDate(s.slice(0, 10)) && TIME.test(s.slice(11));
  },
  uuid: (s) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s),
};

const deepEqual = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Problems with `value` against `schema` (empty: valid). */
export function validate(schema: S, value: unknown, root: S = schema, path = '$'): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${path}: false schema`];
  const s = schema;
  const out: string[] = [];
  if (typeof s.$ref === 'string') {
    let t: unknown = root;
    for (const part of s.$ref.slice(2).split('/').filter(Boolean)) t = (t as Record<string, unknown>)[part];
    return validate(t as S, value, root, path);
  }
  if ('const' in s && !deepEqual(s.const, value)) out.push(`${path}: not the const`);
  if (Array.isArray(s.enum) && !s.enum.some((e) => deepEqual(e, value))) out.push(`${path}: not in enum`);
  if (Array.isArray(s.anyOf) && !s.anyOf.some((x) => validate(x as S, value, root, path).length === 0))
    out.push(`${path}: no anyOf branch`);
  if (Array.isArray(s.oneOf)) {
    const n = s.oneOf.filter((x) => validate(x as S, value, root, path).length === 0).length;
    if (n !== 1) out.push(`${path}: ${n} oneOf branches match`);
  }
  if (Array.isArray(s.allOf)) for (const x of s.allOf) out.push(...validate(x as S, value, root, path));
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    if (!types.some((t) => typeOk(String(t), value))) out.push(`${path}: not of type ${types.join('|')}`);
  }
  if (typeof value === 'string') {
    const len = Array.from(value).length;
    if (typeof s.minLength === 'number' && len < s.minLength) out.push(`${path}: shorter than ${s.minLength}`);
    if (typeof s.maxLength === 'number' && len > s.maxLength) out.push(`${path}: longer than ${s.maxLength}`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(value)) out.push(`${path}: does not match ${s.pattern}`);
    if (typeof s.format === 'string' && !FORMATS[s.format]?.(value)) out.push(`${path}: not a ${s.format}`);
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === 'number' && value.length < s.minItems) out.push(`${path}: fewer than ${s.minItems} items`);
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) out.push(`${path}: more than ${s.maxItems} items`);
    if (s.items !== undefined) for (const [i, v] of value.entries()) out.push(...validate(s.items as S, v, root, `${path}[${i}]`));
  }
  if (isObj(value)) {
    const props = (isObj(s.properties) ? s.properties : {}) as Record<string, S>;
    for (const r of (s.required as string[] | undefined) ?? []) if (!(r in value)) out.push(`${path}: missing ${r}`);
    for (const [k, v] of Object.entries(value)) {
      if (k in props) out.push(...validate(props[k], v, root, `${path}.${k}`));
      else if (s.additionalProperties === false) out.push(`${path}: extra property ${k}`);
      else if (s.additionalProperties !== undefined) out.push(...validate(s.additionalProperties as S, v, root, `${path}.${k}`));
    }
  }
  return out;
}
