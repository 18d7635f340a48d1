#!/usr/bin/env node
/**
 * `kvroute-epp`: parse flags, start the EPP, print one JSON line with the bound ports (so harnesses can use port 0),
 * and shut down gracefully on SIGTERM/SIGINT (Kubernetes sends SIGTERM, then waits terminationGracePeriodSeconds).
 */
import { FlagParseError, parseArgs, usage, UsageError } from './cli';
import * as grpc from '@grpc/grpc-js';
import { grpcJsLogger, jsonLogger, startEpp } from './runner';

/**
 * 2 for argv that does not parse as flags, as pflag's ExitOnError CommandLine exits; 1 for a value refused after, as
 * llm-d-router v0.10.0's runner returns opts.Validate's error and cmd/epp/main.go run answers it `return 1`.
 */
function usageExitStatus(e: UsageError): number {
  return e instanceof FlagParseError ? 2 : 1;
}

async function main(): Promise<number> {
  // First, as llm-d-router v0.10.0 cmd/epp/main.go installs ctrl.SetupSignalHandler() before the runner starts: a
  // SIGTERM that arrives while the EPP is still starting (a slow config read, a large pool) then stops it once started
  // and the process exits 0, where Node's default for an unhandled SIGTERM would kill it by the signal. A second
  // SIGTERM or SIGINT, at any time (still starting, or draining after the first), exits 1 at once, as that handler does
  // (controller-runtime v0.23.3 pkg/manager/signals/signal.go is k8s.io/apiserver pkg/server/signal.go
  // SetupSignalContext: `os.Exit(1) // second signal. Exit directly.`).
  const stopSignal = new Promise<string>((resolve) => {
    let received = false;
    const onSignal = (signal: string) => {
      if (received) process.exit(1);
      received = true;
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  let options;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`kvroute-epp: ${e.message}\n`);
      return usageExitStatus(e);
    }
    throw e;
  }
  if (!options) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const logger = jsonLogger(options.verbosity);
  // grpc-js writes its own lines ("E No address added out of total 1 resolved" when the ext_proc port is taken) to
  // stderr as plain text; through the logger they are JSON records like every other line of the EPP's log.
  grpc.setLogger(grpcJsLogger(logger));
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
      return usageExitStatus(e);
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
  logger.warn('shutting down', { signal: await stopSignal });
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
