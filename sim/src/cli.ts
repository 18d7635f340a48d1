import { OptionError, resolveOptions, type SimulatorOptions } from './options';

type Kind = 'int' | 'float' | 'string' | 'list';

interface FlagSpec {
  key: keyof SimulatorOptions;
  kind: Kind;
  help: string;
}

const FLAGS: Record<string, FlagSpec> = {
  '--host': { key: 'host', kind: 'string', help: 'address to bind (default 0.0.0.0)' },
  '--port': { key: 'port', kind: 'int', help: 'port to bind; 0 picks a free one (default 8000)' },
  '--model': { key: 'model', kind: 'string', help: 'model id to impersonate (default Qwen/Qwen3-0.6B); the tokenizer is always Qwen3' },
  '--served-model-name': { key: 'servedModelNames', kind: 'list', help: 'comma-separated names accepted in requests (default: --model); the first labels metrics' },
  '--block-size': { key: 'blockSize', kind: 'int', help: 'tokens per KV block: 1, 8, 16, 32, 64 or 128 (default 16)' },
  '--kv-cache-blocks': { key: 'kvCacheBlocks', kind: 'int', help: 'KV cache capacity in blocks (default 8192)' },
  '--max-num-seqs': { key: 'maxNumSeqs', kind: 'int', help: 'max concurrently running requests; the rest wait (default 256)' },
  '--max-model-len': { key: 'maxModelLen', kind: 'int', help: 'max prompt + completion tokens per request (default 40960)' },
  '--ttft-overhead-ms': { key: 'ttftOverheadMs', kind: 'float', help: 'fixed time before prefill, per request (default 20)' },
  '--prefill-ms-per-token': { key: 'prefillMsPerToken', kind: 'float', help: 'prefill time per uncached prompt token (default 0.25)' },
  '--itl-ms': { key: 'itlMs', kind: 'float', help: 'time per output token after the first (default 20)' },
  '--prefill-concurrency': { key: 'prefillConcurrency', kind: 'int', help: 'prefills computed at once, FCFS; 0 = unlimited (default 1)' },
  '--time-scale': { key: 'timeScale', kind: 'float', help: 'run N× faster than real time; reported times stay in model seconds (default 1)' },
  '--pod-name': { key: 'podName', kind: 'string', help: 'name reported in x-kvroute-pod and logs (default $POD_NAME or hostname)' },
  '--default-max-tokens': { key: 'defaultMaxTokens', kind: 'int', help: 'max_tokens when a request omits it (default 16)' },
};

export const USAGE = `Usage: kvroute-sim [flags]

A vLLM 0.10 simulator: OpenAI API, Qwen3 tokenizer and chat template, a vLLM-like
prefix cache, a prefill/decode latency model and vLLM's Prometheus metrics.

Flags (--flag value or --flag=value):
${Object.entries(FLAGS)
  .map(([flag, s]) => `  ${flag.padEnd(24)}${s.help}`)
  .join('\n')}
  ${'--help, -h'.padEnd(24)}show this help

On start it prints one JSON line, {"event":"listening","port":N,...}, to stdout.
`;

export type CliResult = { kind: 'help' } | { kind: 'run'; options: SimulatorOptions };

/** Parses argv (without node and script); throws OptionError naming the offending flag. */
export function parseCli(argv: readonly string[]): CliResult {
  const partial: Partial<SimulatorOptions> = { host: '0.0.0.0', port: 8000 };
  const seen = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') return { kind: 'help' };
    if (!arg.startsWith('--')) throw new OptionError(arg, 'unexpected argument (flags start with --)');
    const eq = arg.indexOf('=');
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const spec = FLAGS[flag];
    if (!spec) throw new OptionError(flag, 'unknown flag (see --help)');
    if (seen.has(flag)) throw new OptionError(flag, 'given more than once');
    seen.add(flag);
    let value: string;
    if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) throw new OptionError(flag, 'missing value');
      value = argv[++i];
    }
    (partial as Record<string, unknown>)[spec.key] = convert(flag, spec.kind, value);
  }
  return { kind: 'run', options: resolveOptions(partial) };
}

function convert(flag: string, kind: Kind, value: string): unknown {
  const trimmed = value.trim();
  switch (kind) {
    case 'int': {
      if (!/^[+-]?\d+$/.test(trimmed)) throw new OptionError(flag, `expected an integer, got ${JSON.stringify(value)}`);
      return Number(trimmed);
    }
    case 'float': {
      const n = Number(trimmed);
      if (trimmed === '' || !Number.isFinite(n)) throw new OptionError(flag, `expected a number, got ${JSON.stringify(value)}`);
      return n;
    }
    case 'string':
      if (value.length === 0) throw new OptionError(flag, 'expected a non-empty value');
      return value;
    case 'list': {
      const parts = value.split(',').map((s) => s.trim());
      if (parts.some((p) => p.length === 0)) throw new OptionError(flag, `empty name in ${JSON.stringify(value)}`);
      return parts;
    }
  }
}
