/**
 * Everything `ie convert --q4-map` needs from a manifest before the first byte is written:
 * the manifest resolved against the source's tensors (or, expanded, checked against them),
 * refused when rejected or when it needs calibration it does not carry, and turned into
 * exportIebin options (transform, per-tensor layouts, audit record).
 */
import { expectedTensors, type ConvertOptions, type ModelConfig, type SourceTensor } from '@ie/format';
import { ManifestError } from '../errors.js';
import type { LoadedManifest } from '../manifest/parse.js';
import { plansFromExpanded, resolvePolicy, type ModelTensor, type TensorPlan } from '../manifest/resolve.js';
import type { ClipSearchPool } from '../ptq/pool.js';
import { manifestScales, manifestTransform, quantizationRecord } from './transform.js';

/** A model's tensors as resolution sees them (role from the canonical table). */
export function modelTensors(
  config: ModelConfig,
  tensors: ReadonlyArray<Pick<SourceTensor, 'name' | 'shape' | 'dtype' | 'quant'>>,
): ModelTensor[] {
  const roles = new Map(expectedTensors(config).map((e) => [e.name, e.role]));
  return tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, quant: t.quant, role: roles.get(t.name) ?? 'projection' }));
}

export interface ExportPlan {
  plans: TensorPlan[];
  options: Required<Pick<ConvertOptions, 'transform' | 'layouts' | 'quantization'>>;
}

/** Plans an export per `loaded` for a source with `config` and `tensors`. `force` exports a rejected manifest; `pool` runs clip searches on worker threads. */
export function planExport(
  loaded: LoadedManifest,
  config: ModelConfig,
  tensors: ReadonlyArray<Pick<SourceTensor, 'name' | 'shape' | 'dtype' | 'quant'>>,
  opts: { force?: boolean; pool?: ClipSearchPool } = {},
): ExportPlan {
  const { manifest: m, file, sha256 } = loaded;
  const mt = modelTensors(config, tensors);
  let plans: TensorPlan[];
  let expectedSha256: Map<string, string> | undefined;
  if (m.kind === 'policy') {
    plans = resolvePolicy(m, mt, file);
    const needs = plans.filter((p) => p.method === 'awq');
    if (needs.length) {
      const rules = [...new Set(needs.map((p) => p.rule))];
      throw new ManifestError(
        'QUANT_NEEDS_CALIBRATION',
        file,
        rules.map((r) => ({ field: `rules[${r}].method`, message: 'is "awq", which needs activations from a calibration run' })),
        `${file} uses activation-aware quantization, which needs a calibration run: export the manifest quantizeModel expands it to (or use method "clip" or "rtn")`,
      );
    }
  } else {
    if (m.status === 'rejected' && !opts.force) {
      throw new ManifestError(
        'QUANT_MANIFEST_REJECTED',
        file,
        (m.gate.failures ?? []).map((f) => ({ field: 'gate', message: f })),
        `${file} failed its calibration gate (status "rejected")`,
      );
    }
    plans = plansFromExpanded(m, mt, config, file);
    expectedSha256 = new Map(m.tensors.map((e) => [e.name, e.source.sha256]));
  }
  return {
    plans,
    options: {
      transform: manifestTransform({ plans, scales: manifestScales(m), expectedSha256, file, pool: opts.pool }),
      layouts: new Map(plans.map((p) => [p.name, p.layout])),
      quantization: quantizationRecord(m, file, sha256, plans),
    },
  };
}
