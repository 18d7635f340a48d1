/** The EPP as a library: start it in-process (what `kvroute-epp` runs), with its options parsed from upstream's flags. */
export { startEpp, loadConfig, jsonLogger, type Logger, type RunningEpp } from './runner';
export { FlagParseError, parseArgs, usage, UsageError, type EppOptions } from './cli';
