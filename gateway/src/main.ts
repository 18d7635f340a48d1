#!/usr/bin/env node
/**
 * `kvroute-gateway`: runs the gateway from the command line. Prints one JSON line `{"event":"listening","port":N}`
 * on stdout once listening (so a harness can find an ephemeral port), logs warnings as JSON lines on stderr, and
 * shuts down gracefully on SIGTERM/SIGINT (`{"event":"stopped"}`). Exit codes: 0 after a clean shutdown, 2 for bad
 * flags, 1 when the gateway cannot start, an ext_proc filter the chosen Envoy release refuses included (the message is
 * Envoy's, as its listener NACK would carry it).
 */
import { CliError, flagFor, parseArgs, USAGE } from './cli';
import { startGateway } from './gateway';
import { GatewayConfigError } from './options';

async function main(argv: readonly string[]): Promise<number> {
  let command;
  try {
    command = parseArgs(argv);
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`kvroute-gateway: ${err.message}\n(see kvroute-gateway --help)\n`);
      return 2;
    }
    throw err;
  }
  if (command.kind === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  let gateway;
  try {
    gateway = await startGateway(command.options);
  } catch (err) {
    const message = err instanceof GatewayConfigError
      ? `${flagFor(err.option)}: ${err.message.slice(err.option.length + 2)}`
      : err instanceof Error ? err.message : String(err);
    process.stderr.write(`kvroute-gateway: cannot start: ${message}\n`);
    return 1;
  }
  const g = gateway;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), level: 'info', msg: 'shutting down', signal })}\n`);
      g.close().then(
        () => {
          process.stdout.write(`${JSON.stringify({ event: 'stopped' })}\n`);
          resolve(0);
        },
        (err: unknown) => {
          process.stderr.write(`kvroute-gateway: shutdown failed: ${String(err)}\n`);
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // Only now: a harness stops the gateway as soon as it reads this line, and a SIGTERM before the handlers above
    // were installed killed it by the signal, without its graceful close.
    process.stdout.write(`${JSON.stringify({ event: 'listening', port: g.port })}\n`);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Anything still open after a clean close (a stuck socket) must not keep the process alive.
    if (code === 0) setTimeout(() => process.exit(code), 1000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`kvroute-gateway: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
