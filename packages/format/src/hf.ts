/**
 * Hugging Face model directories: config.json, model.safetensors or a sharded
 * model.safetensors.index.json, tokenizer.json. Llama, Mistral and Qwen2 (with its q/k/v
 * biases) architectures; TinyLlama and SmolLM are Llama. Weights stay as they are: HF
 * checkpoints pair RoPE dimensions as rotate-half (their Q/K rows are permuted relative
 * to Meta's adjacent-pair layout), so the importer records `rope_style: "rotate_half"`.
 *
 * gpt-oss (GptOssForCausalLM): experts as MXFP4 `*_blocks` / `*_scales` pairs are re-packed
 * into ggml mxfp4 blocks without loss; `gate_up_proj` interleaves gate (even rows) and up (odd
 * rows), split into ffn_gate_exps and ffn_up_exps, its bias likewise. A dequantized checkpoint
 * (float `gate_up_proj` [E, dim, 2*ffn] and `down_proj` [E, ffn, dim], stored for x @ W) is
 * transposed into the same [E, N, K] tensors, kept float. `writeHfDir` writes gpt-oss models back
 * in that layout (config.json with the keys of openai/gpt-oss-20b's), MXFP4 experts streamed.
 */
export { canonicalHfName, hfName } from './hf/names.js';
export { hfConfigToModelConfig, modelConfigToHfConfig, type HfConfigExtras } from './hf/config.js';
export { readHfChatTemplate } from './hf/chat-template.js';
export { openHfDir, type OpenHfOptions } from './hf/read.js';
export { writeHfDir, type WriteHfOptions } from './hf/write.js';
