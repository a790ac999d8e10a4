/**
 * Post-export check (`ie validate MODEL --manifest M`): every tensor's stored dtype, scheme,
 * group size, scale dtype and layout against what the manifest says it should be.
 */
import type { Dtype, QuantParams, TensorLayout } from '@ie/format';
import { SCHEME_DTYPE, describeQuant, entryQuant, quantParamsOf, rulePattern } from './resolve.js';
import type { Manifest } from './schema.js';

export interface StoredTensor {
  name: string;
  shape: readonly number[];
  dtype: Dtype;
  quant: QuantParams | null;
  layout: TensorLayout;
}

export interface ManifestMismatch {
  tensor: string;
  expected: string;
  actual: string;
}

interface Expectation {
  dtype: Dtype | null;
  quant: QuantParams | null;
  layout: TensorLayout | null;
}

function expectationsOf(m: Manifest, tensors: readonly StoredTensor[]): Map<string, Expectation> {
  const out = new Map<string, Expectation>();
  if (m.kind === 'expanded') {
    for (const e of m.tensors) out.set(e.name, { dtype: SCHEME_DTYPE[e.scheme], quant: entryQuant(e), layout: e.layout });
    return out;
  }
  const rules = m.rules.map((r) => ({ r, re: rulePattern(r) }));
  for (const t of tensors) {
    const hit = rules.find((x) => x.re.test(t.name))?.r;
    if (!hit || hit.scheme === 'keep') continue;
    if (hit.scheme === 'int4w' || hit.scheme === 'int8w') {
      out.set(t.name, {
        dtype: SCHEME_DTYPE[hit.scheme],
        quant: quantParamsOf(hit.scheme, { ...hit, scale_dtype: hit.scale_dtype ?? m.defaults?.scale_dtype }, t.shape[1]),
        layout: null,
      });
    } else out.set(t.name, { dtype: t.shape.length === 1 ? 'f32' : hit.scheme, quant: null, layout: null });
  }
  return out;
}

const layoutText = (l: TensorLayout) =>
  l.order === 'pretransposed' ? 'pretransposed' : l.block_k ? `blocked-K ${l.block_k}` : 'row-major';

/** Every tensor whose encoding differs from the manifest's, plus tensors only one side has (expanded manifests). */
export function diffAgainstManifest(m: Manifest, tensors: readonly StoredTensor[]): ManifestMismatch[] {
  const want = expectationsOf(m, tensors);
  const out: ManifestMismatch[] = [];
  const seen = new Set<string>();
  for (const t of tensors) {
    seen.add(t.name);
    const e = want.get(t.name);
    if (!e) {
      if (m.kind === 'expanded') out.push({ tensor: t.name, expected: '(no entry)', actual: describeQuant(t.dtype, t.quant) });
      continue;
    }
    const expected = describeQuant(e.dtype as Dtype, e.quant);
    const actual = describeQuant(t.dtype, t.quant);
    if (expected !== actual) out.push({ tensor: t.name, expected, actual });
    else if (e.layout && (e.layout.order !== t.layout.order || e.layout.block_k !== t.layout.block_k))
      out.push({ tensor: t.name, expected: layoutText(e.layout), actual: layoutText(t.layout) });
  }
  for (const name of want.keys()) if (!seen.has(name)) out.push({ tensor: name, expected: 'present', actual: '(missing)' });
  return out;
}
