#!/usr/bin/env node
import { parseCli, USAGE } from './cli';
import { OptionError } from './options';
import { startSimulator } from './server';

function log(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

export async function runCli(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseCli(argv);
  } catch (e) {
    if (e instanceof OptionError) {
      process.stderr.write(`kvroute-sim: error: ${e.message}\n(run kvroute-sim --help for the flags)\n`);
      return 2;
    }
    throw e;
  }
  if (parsed.kind === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  let sim;
  try {
    sim = await startSimulator(parsed.options);
  } catch (e) {
    const reason = startFailure(e, parsed.options.host, parsed.options.port);
    if (reason === undefined) throw e;
    // One line, as uvicorn logs a server it cannot start (`except OSError as exc: logger.error(exc)`, then
    // sys.exit(1); uvicorn/server.py @ 0.35.0 Server.startup), not a stack trace.
    process.stderr.write(`kvroute-sim: error: ${reason}\n`);
    return 1;
  }
  const o = sim.options;
  log({
    event: 'listening',
    host: sim.host,
    port: sim.port,
    pod: o.podName,
    model: o.model,
    served_model_names: o.servedModelNames,
    block_size: o.blockSize,
    kv_cache_blocks: o.kvCacheBlocks,
    time_scale: o.timeScale,
    prefix_caching_hash_algo: o.prefixCachingHashAlgo,
    // Where the KV-event sockets ended up (the actual port when the endpoint asked for tcp://host:*).
    ...(sim.kvEvents ? { kv_events_endpoint: sim.kvEvents.endpoint, kv_events_replay_endpoint: sim.kvEvents.replayEndpoint } : {}),
  });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        // A second signal means "now": skip the drain.
        log({ event: 'forced-exit', signal });
        process.exit(1);
      }
      stopping = true;
      log({ event: 'shutdown', signal });
      void sim.close().then(() => {
        log({ event: 'closed' });
        resolve(0);
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

/**
 * Why the simulator could not start, when that is the operator's to fix: a flag's file it cannot use (an OptionError
 * from the start, e.g. an unreadable --ssl-certfile), or an address it cannot listen on (a port in use, a host that does
 * not resolve or is not this machine's). Undefined for anything else, which is a bug and keeps its stack trace.
 */
function startFailure(e: unknown, host: string, port: number): string | undefined {
  if (e instanceof OptionError) return e.message;
  const err = e as NodeJS.ErrnoException;
  if (err?.syscall === 'listen' || err?.syscall === 'getaddrinfo' || err?.code === 'EADDRNOTAVAIL') {
    return `cannot listen on ${host}:${port} (--host, --port): ${err.message}`;
  }
  return undefined;
}

if (require.main === module) {
  runCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`kvroute-sim: fatal: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
