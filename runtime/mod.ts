/**
 * crumb's public API for programs that embed it: load a model as an Engine, generate and
 * embed, serve it with Hono, and the typed errors. Re-exports only.
 */
export * from "./errors.ts";
export { loadEngine, type LoadEngineOptions } from "./engine/load-engine.ts";
export { createEngine, createEngineOn, type EngineOptions } from "./engine/engine.ts";
export type { ChatMessage, Engine, FinishReason, GenerateEvent, GenerateOptions, Pooling, TokenLogprob, Usage } from "./engine/types.ts";
export { KV_TYPES, type KvType } from "./engine/wasm-backend.ts";
export { createApp, type AppOptions } from "./server/app.ts";
export { createTokenizer, type CrumbTokenizer } from "./tokenizer/tokenizer.ts";
export type { ModelSource, TokenizerFiles } from "./models/types.ts";
