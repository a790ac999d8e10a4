import { IebinReader, weightBytesPerToken, type IebinHeader, type TensorEntry } from '@ie/format';
import { describeMix, filePrecisionMix } from '@ie/runtime';
import { defineCommand } from '../command.js';
import { EXIT } from '../errors.js';
import { bytes, int, table } from '../human.js';
import { modelDirectory } from './model-dir.js';

function layoutText(t: TensorEntry): string {
  if (t.layout.order === 'pretransposed') return 'pretransposed';
  return t.layout.block_k ? `blocked-K ${t.layout.block_k}` : 'row-major';
}

function quantText(t: TensorEntry): string {
  const q = t.quant;
  if (!q) return '';
  return q.granularity === 'per_row' ? `${q.scheme} per-row ${q.scale_dtype}` : `${q.scheme} g${q.group_size} ${q.scale_dtype}`;
}

/** Everything inspect reports, as data (the --json output). */
export function summarize(h: IebinHeader) {
  const byDtype: Record<string, { tensors: number; bytes: number }> = {};
  for (const t of h.tensors) {
    const d = (byDtype[t.dtype] ??= { tensors: 0, bytes: 0 });
    d.tensors++;
    d.bytes += t.bytes;
  }
  const tok = h.tokenizer;
  return {
    format: `${h.format} v${h.version}`,
    config: h.config,
    tokenizer: tok.model === 'hf' ? { model: 'hf', file: tok.file, bytes: tok.bytes } : { model: tok.model, pieces: tok.pieces.length },
    provenance: h.provenance,
    quantization: h.quantization,
    tensorCount: h.tensors.length,
    binBytes: h.bin.bytes,
    totalsByDtype: byDtype,
    weightBytesPerToken: weightBytesPerToken(h.tensors, h.config.tied_classifier, h.config.moe),
    precision: describeMix(filePrecisionMix(h.config, h.tensors)),
    precisionMix: filePrecisionMix(h.config, h.tensors),
    tensors: h.tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      layout: layoutText(t),
      quant: quantText(t) || null,
      bytes: t.bytes,
      offset: t.offset,
    })),
  };
}

export const inspect = defineCommand({
  name: 'inspect',
  summary: "print a model's architecture, tokenizer, tensors and weight bytes per token",
  args: [{ name: 'MODEL_DIR', description: 'an IEBIN model directory, or a GGUF file (converted once into IE_CACHE_DIR)' }],
  flags: {
    json: { type: 'boolean', description: 'print everything as one JSON object (config, provenance, every tensor)' },
  },
  examples: [
    { command: 'ie inspect models/stories260K', does: 'the summary and the tensor table' },
    { command: 'ie inspect model.gguf', does: 'what ie runs of a GGUF file: its conversion, as generate loads it' },
    { command: "node apps/ie/dist/cli.js inspect models/tl --json | jq '.weightBytesPerToken'", does: 'one figure, through clean JSON' },
  ],
  exits: ['BAD_INPUT'],
  async run(v, [path], io) {
    const r = await IebinReader.open(await modelDirectory(path, io));
    try {
      const s = summarize(r.header);
      if (v.json) {
        io.out(JSON.stringify(s, null, 2));
        return EXIT.OK;
      }
      const c = s.config;
      const src = s.provenance.sources.map((f) => `${f.file} (sha256 ${f.sha256.slice(0, 12)}…)`).join(', ');
      io.out(
        [
          `model       ${path} (${s.format})`,
          `arch        ${c.architecture}: dim ${c.dim}, ${c.n_layers} layers, ${c.n_heads} heads / ${c.n_kv_heads} KV heads, head_dim ${c.head_dim}, ffn ${c.ffn_dim}, vocab ${c.vocab_size}, context ${c.context_length}`,
          `rope        ${c.rope_style}, theta ${c.rope_theta}${c.rope_scaling ? `, ${c.rope_scaling.type} scaling x${c.rope_scaling.factor}` : ''}; norm eps ${c.norm_eps}; classifier ${c.tied_classifier ? 'tied to the embedding' : 'separate'}${c.attn_qkv_bias ? '; q/k/v biases' : ''}${c.attn_sinks ? '; attention sinks' : ''}`,
          ...(c.sliding_window !== null
            ? [
                `attention   sliding window ${c.sliding_window} on ${c.sliding_layers ? `${c.sliding_layers.filter(Boolean).length} of ${c.n_layers} layers` : 'every layer'}`,
              ]
            : []),
          ...(c.moe
            ? [`experts     ${c.moe.n_experts}, ${c.moe.experts_per_token} per token (clamped SwiGLU, limit ${c.moe.swiglu_limit})`]
            : []),
          `tokens      bos ${c.bos_id}, eos ${c.eos_id}; tokenizer ${s.tokenizer.model}${'pieces' in s.tokenizer ? `, ${int(s.tokenizer.pieces as number)} pieces` : `, ${s.tokenizer.file}`}`,
          `source      ${s.provenance.source_format}${src ? `: ${src}` : ''}; written by ${s.provenance.converter}`,
          `tensors     ${s.tensorCount}, ${bytes(s.binBytes)} (${int(s.binBytes)} bytes)`,
          '',
        ].join('\n'),
      );
      io.out(
        table(
          [
            ['name', 'dtype', 'shape', 'layout', 'quant', 'bytes'],
            ...s.tensors.map((t) => [t.name, t.dtype, t.shape.join('x'), t.layout, t.quant ?? '', int(t.bytes)]),
          ],
          [5],
        ),
      );
      io.out('');
      io.out(
        table(
          [
            ['dtype', 'tensors', 'bytes'],
            ...Object.entries(s.totalsByDtype).map(([d, x]) => [d, String(x.tensors), `${int(x.bytes)} (${bytes(x.bytes)})`]),
          ],
          [1],
        ),
      );
      io.out('');
      io.out(`projections: ${s.precision} (what the model runs at; --precision converts only downwards)`);
      io.out(
        `weight bytes per token: ${int(s.weightBytesPerToken)} (${bytes(s.weightBytesPerToken)}; ${c.moe ? `the ${c.moe.experts_per_token} active of ${c.moe.n_experts} experts per layer, ` : ''}every other matrix once, one embedding row${c.tied_classifier ? ', the embedding again as classifier' : ''})`,
      );
      return EXIT.OK;
    } finally {
      await r.close();
    }
  },
});
