/**
 * @ie/server — the OpenAI-compatible HTTP server behind `ie serve`: `startServer({ load, modelId })`
 * listens at once, loads the model, and serves /v1/chat/completions, /v1/completions, /v1/models,
 * /health and /metrics.
 */
export { startServer, type IeServer, type ServeOptions, type ServerState } from './server.js';
export {
  SerialScheduler,
  BatchingScheduler,
  type Scheduler,
  type SerialSchedulerOptions,
  type BatchingSchedulerOptions,
  type GenerationRunner,
  type GenerationRequest,
  type SamplingRequest,
  type Ticket,
  type Delta,
  type Outcome,
  type SchedulerStats,
} from './scheduler.js';
export { ServerError, SERVER_ERROR_CODES, fromRuntimeError, type ServerErrorCode, type OpenAiErrorBody } from './errors.js';
export { Counter, Gauge, Histogram, Registry, EventLoopLag, parsePrometheus, PROMETHEUS_CONTENT_TYPE } from './metrics.js';
export { CHAT_BODY_SCHEMA, COMPLETION_BODY_SCHEMA, finishReason } from './openai.js';
