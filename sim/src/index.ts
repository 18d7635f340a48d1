/** The simulator as a library: start one in-process, or drive its engine and KV cache directly. */
export { startSimulator } from './server';
export type { Simulator, StartOptions } from './server';
export { defaultOptions, resolveOptions, OptionError, MAX_KV_CACHE_BLOCKS } from './options';
export type { SimulatorInput, SimulatorOptions } from './options';
export { parseCli } from './cli';
export { Engine } from './engine';
export type { EngineConfig, RequestResult, EngineStats, KvEventSink } from './engine';
export { KvCacheManager } from './kv-cache';
export { BlockHasher, chainBlockHashes, generationOf } from './block-hash';
export type { BlockHash, HashAlgo, VllmGeneration } from './block-hash';
export { KvEventPublisher } from './kv-publisher';
export { KV_EVENTS_DEFAULTS, parseKvEventsConfig } from './kv-events-config';
export type { KvEventsConfig, KvEventsEncoding } from './kv-events-config';
export { ManualClock, RealtimeClock } from './clock';
export type { SimClock } from './clock';
export { loadQwen3Tokenizer } from './tokenizer';
export { runCli } from './main';

