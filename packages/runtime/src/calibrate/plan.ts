/**
 * Stage 0: the policy resolved against the model (one plan per tensor) and the identity of the
 * weights the manifest is measured on (each tensor's sha256 and the model's fingerprint).
 */
import { removeLayout, type IebinReader } from '@ie/format';
import {
  QuantError,
  modelFingerprint,
  modelTensors,
  resolvePolicy,
  tensorSha256,
  type LoadedManifest,
  type Policy,
  type TensorPlan,
} from '@ie/quant';

export interface TensorDigest {
  name: string;
  shape: readonly number[];
  sha256: string;
}

export interface ModelPlan {
  /** One plan per stored tensor, in file order. */
  plans: TensorPlan[];
  planOf: ReadonlyMap<string, TensorPlan>;
  /** Every stored tensor's digest, in file order. */
  digests: TensorDigest[];
  fingerprint: string;
}

/** The policy of a loaded manifest; an expanded manifest is refused (ie quantize makes those). */
export function policyOf(m: LoadedManifest): Policy {
  if (m.manifest.kind !== 'policy')
    throw new QuantError('QUANT_MANIFEST_INVALID', `${m.file} is an expanded manifest; ie quantize takes a policy (kind "policy")`);
  return m.manifest as Policy;
}

/** Whether a plan quantizes its tensor here (not a float, not a copy of an encoding the source already has). */
export function isQuantized(plan: TensorPlan | undefined): boolean {
  return !!plan && !plan.passthrough && plan.quant !== null;
}

/** Resolves `policy` against the model `reader` holds (every problem at once, as a ManifestError) and digests its tensors. */
export function planModel(policy: Policy, reader: IebinReader, file: string): ModelPlan {
  const c = reader.config;
  const plans = resolvePolicy(policy, modelTensors(c, reader.tensors), file);
  const digests = reader.tensors.map((t) => {
    const rowMajor = removeLayout(t, reader.view(t.name).bytes);
    return { name: t.name, shape: t.shape, sha256: tensorSha256(t.dtype, t.quant, rowMajor) };
  });
  return { plans, planOf: new Map(plans.map((p) => [p.name, p])), digests, fingerprint: modelFingerprint(c, digests) };
}
