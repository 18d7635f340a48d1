#!/usr/bin/env node
/**
 * `kvroute-bench <command> [flags]`: the local request path end to end. `demo` is the validator loop (`npm run demo`),
 * `routing` the routing benchmark (`npm run bench:routing`), `stack` the path left running for a client (`npm start`).
 * Exit status: 0 on success (for `stack`, after Ctrl-C), 1 when a run fails or misses its targets, 2 for bad flags.
 * Child processes are stopped on every exit path.
 */
import { burstCommand } from './burst-bench';
import { UsageError } from './cli-args';
import { demoCommand } from './demo';
import { heteroCommand } from './hetero-bench';
import { loraCommand } from './lora-bench';
import { stopAll } from './processes';
import { routingCommand } from './routing-bench';
import { stackCommand } from './stack-command';

const COMMANDS: Readonly<Record<string, (argv: readonly string[]) => Promise<number>>> = {
  burst: burstCommand,
  demo: demoCommand,
  hetero: heteroCommand,
  lora: loraCommand,
  routing: routingCommand,
  stack: stackCommand,
};

const USAGE = `Usage: kvroute-bench <command> [flags]

Commands:
  demo      kvroute vs round robin vs session hash on a chat + RAG workload (npm run demo)
  routing   the routing benchmark: public workload shapes through every policy (npm run bench:routing)
  lora      LoRA adapters under --max-loras through each policy (npm run bench:lora)
  hetero    a pool with slower pods (an older GPU generation) through each policy (npm run bench:hetero)
  burst     a burst of new sessions sharing one cached system prompt through each policy (npm run bench:burst)
  stack     pods, EPP and gateway on 127.0.0.1 for your OpenAI client, until Ctrl-C (npm start)

Run kvroute-bench <command> --help for a command's flags.`;

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    process.stdout.write(`${USAGE}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`kvroute-bench: unknown command "${name}"; expected one of ${Object.keys(COMMANDS).join(', ')}\n`);
    return 2;
  }
  try {
    return await command(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`kvroute-bench ${name}: ${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    async (code) => {
      await stopAll();
      process.exit(code);
    },
    async (e: unknown) => {
      process.stderr.write(`kvroute-bench failed: ${(e as Error)?.stack ?? String(e)}\n`);
      await stopAll();
      process.exit(1);
    },
  );
}
