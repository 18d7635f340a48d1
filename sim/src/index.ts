/** The simulator as a library: start one in-process, or drive its engine and KV cache directly. */
export { startSimulator } from './server';
export type { Simulator, StartOptions } from './server';
export { defaultOptions, resolveOptions, OptionError } from './options';
export type { SimulatorOptions } from './options';
export { parseCli } from './cli';
export { Engine } from './engine';
export type { EngineConfig, RequestResult, EngineStats } from './engine';
export { KvCacheManager } from './kv-cache';
export { chainBlockHashes } from './block-hash';
export { ManualClock, RealtimeClock } from './clock';
export type { SimClock } from './clock';
export { loadQwen3Tokenizer } from './tokenizer';
export { runCli } from './main';

