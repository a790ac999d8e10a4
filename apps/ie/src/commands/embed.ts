import { Engine, type EmbedPooling } from '@ie/runtime';
import { defineCommand } from '../command.js';
import { EXIT } from '../errors.js';
import { ENGINE_FLAGS, engineOptions } from './engine-flags.js';

export const embed = defineCommand({
  name: 'embed',
  summary: "print a text's embedding: the model's last hidden state, pooled, as a JSON array",
  args: [
    {
      name: 'MODEL_DIR',
      description: 'an IEBIN model directory (ie convert or ie synth makes one), or a GGUF file (converted once into IE_CACHE_DIR)',
    },
    { name: 'TEXT', description: 'the text to embed' },
  ],
  flags: {
    pooling: {
      type: 'choice',
      arg: 'MODE',
      choices: ['mean', 'last', 'cls'],
      default: 'mean',
      description: "how the tokens' hidden states become one vector: their mean, the last token's or the first token's",
    },
    'no-normalize': { type: 'boolean', description: 'print the pooled vector as it is, not scaled to unit L2 norm' },
    dimensions: {
      type: 'number',
      integer: true,
      min: 1,
      arg: 'N',
      description: 'keep the first N components (normalized after the cut)',
      defaultText: "the model's hidden size",
    },
    json: { type: 'boolean', description: 'print one JSON object (the embedding, its dimensions, tokens, pooling, normalization)' },
    ...ENGINE_FLAGS,
  },
  examples: [
    { command: 'ie embed models/tl "The cat sat on the mat"', does: 'the mean-pooled, unit-norm embedding as a JSON array' },
    { command: 'ie embed models/tl "hello" --pooling last --no-normalize --json | jq \'.dim\'', does: "the last token's raw hidden state" },
  ],
  exits: ['BAD_INPUT', 'INVALID_MODEL'],
  async run(v, [path, text], io) {
    const engine = await Engine.load(path, engineOptions(v));
    try {
      for (const n of engine.notices) io.err(`ie: note: ${n}`);
      const pooling = (v.pooling ?? 'mean') as EmbedPooling;
      const normalize = v['no-normalize'] !== true;
      const [vector] = await engine.embed(text as string, { pooling, normalize, dimensions: v.dimensions });
      const embedding = Array.from(vector);
      if (v.json)
        io.out(
          JSON.stringify({
            model: path,
            dim: embedding.length,
            tokens: engine.tokenize(text as string, { bos: true }).length,
            pooling,
            normalized: normalize,
            embedding,
          }),
        );
      else io.out(JSON.stringify(embedding));
      return EXIT.OK;
    } finally {
      await engine.dispose();
    }
  },
});
