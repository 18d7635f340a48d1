#!/usr/bin/env node
/**
 * `kvroute-epp`: parse flags, start the EPP, print one JSON line with the bound ports (so harnesses can use port 0),
 * and shut down gracefully on SIGTERM/SIGINT (Kubernetes sends SIGTERM, then waits terminationGracePeriodSeconds).
 */
import { parseArgs, usage, UsageError } from './cli';
import { jsonLogger, startEpp } from './runner';

async function main(): Promise<number> {
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`kvroute-epp: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (!options) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const logger = jsonLogger(options.verbosity);
  if (options.ignoredFlags.length > 0) {
    logger.warn('accepted for compatibility with upstream manifests, but ignored', { flags: options.ignoredFlags });
  }
  let epp;
  try {
    epp = await startEpp(options, logger);
  } catch (e) {
    // Flags that only conflict with the config (file discovery and --endpoints) are usage errors too.
    if (e instanceof UsageError) {
      process.stderr.write(`kvroute-epp: ${e.message}\n`);
      return 2;
    }
    logger.error('start-up failed', { error: (e as Error).message });
    return 1;
  }
  process.stdout.write(`${JSON.stringify({
    event: 'listening',
    grpcPort: epp.grpcPort,
    grpcHealthPort: epp.grpcHealthPort,
    metricsPort: epp.metricsPort,
    endpoints: epp.datastore.readyCount,
    flowControl: epp.flowControl.enabled
      ? { maxQueued: epp.flowControl.maxQueued, maxQueuedBytes: epp.flowControl.maxQueuedBytes, maxWaitMs: Number.isFinite(epp.flowControl.maxWaitMs) ? epp.flowControl.maxWaitMs : 'none', dispatchPerTick: epp.flowControl.dispatchPerTick, dispatchIntervalMs: epp.flowControl.dispatchIntervalMs }
      : false,
  })}\n`);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      logger.warn('shutting down', { signal });
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  await epp.stop();
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`kvroute-epp: ${e.stack ?? e.message}\n`);
    process.exit(1);
  },
);
