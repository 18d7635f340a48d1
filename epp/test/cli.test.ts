import { execFileSync, spawn, spawnSync, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { FlagParseError, parseArgs, usage, UsageError } from '../src/cli';

describe('kvroute-epp flags', () => {
  test('kebab-case flags with defaults', () => {
    const o = parseArgs(['--pool-name', 'pool', '--pool-namespace=llm-d'])!;
    expect(o).toMatchObject({
      poolName: 'pool', poolNamespace: 'llm-d', grpcPort: 9002, grpcHealthPort: 9003, metricsPort: 9090,
      refreshMetricsIntervalMs: 50, modelServerMetricsPath: '/metrics', requestBodyMode: 'full-duplex', verbosity: 0,
    });
    expect(o.poolGroup).toBeUndefined();
    expect(o.certPath).toBeUndefined();
  });

  test('the upstream camelCase spellings, single dash included, as in GIE and llm-d manifests', () => {
    const o = parseArgs(['-poolName', 'gaie', '-poolNamespace', 'ns', '--grpcPort', '9002', '-grpcHealthPort', '9003',
      '-metricsPort', '9090', '--secureServing=false', '--refreshMetricsInterval=100ms', '-v', '4', '--configFile', '/config/x.yaml'])!;
    expect(o).toMatchObject({ poolName: 'gaie', poolNamespace: 'ns', refreshMetricsIntervalMs: 100, verbosity: 4, configFile: '/config/x.yaml' });
  });

  test('GIE v1.5.0 pkg/epp/server/options.go flags: the ones for concerns kvroute handles its own way start the EPP and are reported; subset filtering can be turned off; endpoint selectors are refused, named', () => {
    const o = parseArgs(['--pool-name', 'p', '--enable-pprof=false', '--health-checking', '--tracing=false', '--metrics-endpoint-auth=false',
      '--enable-cert-reload', '--ha-enable-leader-election', '--refresh-prometheus-metrics-interval', '5s', '--metrics-staleness-threshold=2s',
      '--disable-endpoint-subset-filter'], {})!;
    // --enable-cert-reload without --cert-path reloads nothing, as upstream (the reload itself: extproc-health.test.ts).
    expect(o.ignoredFlags).toEqual(['--enable-pprof', '--health-checking', '--tracing', '--metrics-endpoint-auth',
      '--ha-enable-leader-election', '--refresh-prometheus-metrics-interval', '--enable-cert-reload']);
    expect(o.enableCertReload).toBe(false);
    // With a --cert-path (GIE v1.5.0 runserver.go: `r.CertPath != "" && r.EnableCertReload`) the pair is followed.
    const withCert = parseArgs(['--pool-name', 'p', '--cert-path', '/certs', '--enable-cert-reload'], {})!;
    expect({ reload: withCert.enableCertReload, ignored: withCert.ignoredFlags }).toEqual({ reload: true, ignored: [] });
    // An explicit --secure-serving=false serves plaintext with the path unused, as upstream's runserver.go reads
    // --cert-path only under SecureServing (llm-d-router v0.10.0, GIE v1.5.0): reported, not refused.
    for (const args of [['--cert-path', '/certs', '--secure-serving=false', '--enable-cert-reload'], ['--secureServing=false', '--certPath=/certs', '--enable-cert-reload']]) {
      const plain = parseArgs(['--pool-name', 'p', ...args], {})!;
      expect({ certPath: plain.certPath, secure: plain.secureServing, reload: plain.enableCertReload, ignored: plain.ignoredFlags })
        .toEqual({ certPath: undefined, secure: false, reload: false, ignored: ['--cert-path', '--enable-cert-reload'] });
    }
    // Used, as GIE v1.5.0 uses it: the pool gauges' staleness (pkg/epp/datalayer/logger/logger.go).
    expect(o.metricsStalenessThresholdMs).toBe(2000);
    expect(parseArgs(['--pool-name', 'p', '--metrics-staleness-threshold', '500ms'], {})!.metricsStalenessThresholdMs).toBe(500);
    expect(parseArgs(['--pool-name', 'p', '--metrics-staleness-threshold=0s'], {})!.metricsStalenessThresholdMs).toBe(0);
    expect(o.disableEndpointSubsetFilter).toBe(true);
    expect(parseArgs(['--pool-name', 'p'], {})!.disableEndpointSubsetFilter).toBe(false);
  });

  test('GIE v0.5.1-v1.4.x cmd/epp/runner/runner.go metric-name and destination-hint flags (llm-d guides, GIE chart): vLLM\'s names and the defaults start the EPP and are reported as ignored; any other value is refused, named', () => {
    const o = parseArgs(['--pool-name', 'p', '--total-queued-requests-metric=vllm:num_requests_waiting', '--kv-cache-usage-percentage-metric', 'vllm:kv_cache_usage_perc',
      '--total-running-requests-metric=vllm:num_requests_running', '--cache-info-metric=vllm:cache_config_info', '--lora-info-metric', 'vllm:lora_requests_info'], {})!;
    expect(o.ignoredFlags).toEqual(['--total-queued-requests-metric', '--total-running-requests-metric', '--kv-cache-usage-percentage-metric', '--cache-info-metric', '--lora-info-metric']);
    // v0.5.1's camelCase spellings, the older KV name, and the two destination-hint flags at their defaults.
    const old = parseArgs(['--poolName', 'p', '-totalQueuedRequestsMetric', 'vllm:num_requests_waiting', '-kvCacheUsagePercentageMetric', 'vllm:gpu_cache_usage_perc',
      '-loraInfoMetric', 'vllm:lora_requests_info', '-destinationEndpointHintKey', 'x-gateway-destination-endpoint', '-DestinationEndpointHintMetadataNamespace', 'envoy.lb'], {})!;
    expect(old.ignoredFlags).toEqual(['--total-queued-requests-metric', '--kv-cache-usage-percentage-metric', '--lora-info-metric', '--destinationEndpointHintKey', '--DestinationEndpointHintMetadataNamespace']);
    expect(() => parseArgs(['--pool-name', 'p', '--kv-cache-usage-percentage-metric', 'trtllm:kv_cache_utilization'], {}))
      .toThrow('--kv-cache-usage-percentage-metric: got "trtllm:kv_cache_utilization"; --kv-cache-usage-percentage-metric names the model-server metric to read; kvroute reads vLLM\'s vllm:kv_cache_usage_perc (or vllm:gpu_cache_usage_perc) itself');
    expect(() => parseArgs(['--pool-name', 'p', '-destinationEndpointHintKey', 'x-other'], {})).toThrow('-destinationEndpointHintKey: got "x-other"');
  });

  test('the build\'s commit and ref come from $KVROUTE_COMMIT_SHA and $KVROUTE_BUILD_REF (the Dockerfile\'s COMMIT_SHA and BUILD_REF build args)', () => {
    expect(parseArgs(['--endpoints', '127.0.0.1:1'], { KVROUTE_COMMIT_SHA: '8cb81c5', KVROUTE_BUILD_REF: 'v0.1.0' })).toMatchObject({ commit: '8cb81c5', buildRef: 'v0.1.0' });
    expect(parseArgs(['--endpoints', '127.0.0.1:1'], {})).toMatchObject({ commit: undefined, buildRef: undefined });
  });

  test('a repeated flag keeps its last value, as pflag does (GIE v1.5.0 config/charts/epplib/templates/_deployment.yaml writes --pool-group and --config-file, then appends the release\'s flags)', () => {
    expect(parseArgs(['--pool-name', 'p', '--pool-name', 'q'])?.poolName).toBe('q');
    expect(parseArgs(['--pool-name', 'p', '--pool-group', 'inference.networking.k8s.io', '--poolGroup', 'inference.networking.x-k8s.io'])?.poolGroup).toBe('inference.networking.x-k8s.io');
    expect(parseArgs(['--endpoints', '127.0.0.1:1', '--v', '1', '--v=2'])?.verbosity).toBe(2);
  });

  test('GIE v1.5.0 cmd/epp/runner/runner.go resolvePoolNamespace: --pool-namespace, else $NAMESPACE, else "default"', () => {
    expect(parseArgs(['--pool-name', 'p', '--pool-namespace', 'a'], { NAMESPACE: 'b' })!.poolNamespace).toBe('a');
    expect(parseArgs(['--pool-name', 'p'], { NAMESPACE: 'b' })!.poolNamespace).toBe('b');
    expect(parseArgs(['--pool-name', 'p'], {})!.poolNamespace).toBe('default');
  });

  test('a boolean flag reads what Go\'s strconv.ParseBool reads (GIE\'s flags): --secure-serving=False, --flow-control=T', () => {
    expect(parseArgs(['--pool-name', 'p', '--secure-serving=False'])!.secureServing).toBe(false);
    expect(parseArgs(['--pool-name', 'p', '--secure-serving=TRUE'])!.secureServing).toBe(true);
    expect(parseArgs(['--pool-name', 'p', '--disable-endpoint-subset-filter=t'])!.disableEndpointSubsetFilter).toBe(true);
    expect(() => parseArgs(['--pool-name', 'p', '--secure-serving=yes'])).toThrow('--secure-serving: must be true or false, got "yes"');
  });

  test('an empty pool or config flag is that flag unset, as GIE documents for --pool-namespace (site-src/guides/epp-configuration/flags.md @ v1.5.0: "leave the flag unset or set it to an empty string"); other string flags must not be empty', () => {
    const o = parseArgs(['--pool-name', 'p', '--pool-namespace=', '--config-file=', '--config-text', '', '--cert-path=', '--pool-group=', '--kubeconfig='], { NAMESPACE: 'llm' })!;
    expect(o.poolNamespace).toBe('llm');
    expect(o.configFile).toBeUndefined();
    expect(o.configText).toBeUndefined();
    expect(o.certPath).toBeUndefined();
    expect(parseArgs(['--pool-name', 'p', '--pool-namespace='], {})!.poolNamespace).toBe('default');
    // Both pool and endpoints empty: neither is given.
    expect(() => parseArgs(['--pool-name=', '--endpoints='])).toThrow('one of --pool-name (Kubernetes discovery) or --endpoints (static) is required');
    expect(() => parseArgs(['--pool-name', 'p', '--host='])).toThrow('--host: must not be empty');
  });

  test('the flags llm-d and GIE charts pass start the EPP: logging and pprof flags are reported as ignored, metrics scheme applies', () => {
    const o = parseArgs(['--poolName', 'p', '-v', '4', '--zap-encoder', 'json', '--enablePprof=true', '--modelServerMetricsScheme=https',
      '--modelServerMetricsHttpsInsecureSkipVerify=true', '--modelServerMetricsPath=/metrics'])!;
    expect(o.ignoredFlags).toEqual(['--zap-encoder', '--enable-pprof']);
    expect(o.modelServerMetricsScheme).toBe('https');
    expect(o.modelServerMetricsInsecureSkipVerify).toBe(true);
    expect(() => parseArgs(['--poolName', 'p', '--modelServerMetricsScheme=ftp'])).toThrow(/--model-server-metrics-scheme: must be http or https/);
  });

  test('--pool-group names a group, not a pinned version (GIE v1.5.0 reads v1.InferencePool whatever the group; discovery-kubernetes.test.ts)', () => {
    expect(parseArgs(['--pool-name=p', '--pool-group=inference.networking.x-k8s.io'])!.poolGroup).toBe('inference.networking.x-k8s.io');
    expect(parseArgs(['--pool-name=p', '--pool-group=inference.networking.k8s.io'])!.poolGroup).toBe('inference.networking.k8s.io');
  });

  // 'parse': argv that pflag's Parse refuses (unknown flag, missing value, a value not of the flag's type), exit 2 as
  // its ExitOnError CommandLine exits; 'validate': refused after parsing, exit 1 as llm-d-router v0.10.0's runner
  // returns opts.Validate's error and cmd/epp/main.go answers `return 1` (main.ts usageExitStatus).
  test.each<[string[], RegExp, 'parse' | 'validate']>([
    [['--pool-name', 'p', '--bogus'], /^unknown flag --bogus; see --help$/, 'parse'],
    [['--pool-name', 'p', '--poolname', 'q'], /did you mean --pool-name\?/, 'parse'],
    [['--pool-name', 'p', 'extra'], /unexpected argument "extra"/, 'parse'],
    [[], /one of --pool-name .* or --endpoints .* is required/, 'validate'],
    [['--pool-name', 'p', '--endpoints', '127.0.0.1:1'], /exclusive/, 'validate'],
    [['--endpoints', '127.0.0.1:99999'], /^--endpoints: /, 'validate'],
    [['--pool-name', 'p', '--grpc-port', 'abc'], /^--grpc-port: must be a port number/, 'parse'],
    [['--pool-name', 'p', '--grpc-port', '70000'], /^--grpc-port: must be a port number/, 'validate'],
    [['--pool-name', 'p', '--refresh-metrics-interval', '50'], /^--refresh-metrics-interval: /, 'parse'],
    [['--pool-name', 'p', '--refresh-metrics-interval', '-1s'], /^--refresh-metrics-interval: must not be negative/, 'validate'],
    [['--pool-name', 'p', '--refresh-metrics-interval', '0s'], /^--refresh-metrics-interval: must be positive/, 'validate'],
    [['--pool-name', 'p', '--secure-serving=maybe'], /^--secure-serving: must be true or false/, 'parse'],
    [['--pool-name', 'p', '--secureServing', 'false'], /write --secureServing=false/, 'parse'],
    [['--pool-name', 'p', '--pool-group', 'example.com'], /^--pool-group: must be/, 'validate'],
    [['--pool-name', 'p', '--request-body-mode', 'streamed'], /^--request-body-mode: must be full-duplex or buffered/, 'validate'],
    [['--pool-name', 'p', '--config-file', 'a', '--config-text', 'b'], /exclusive/, 'validate'],
    [['--pool-name'], /--pool-name: needs a value/, 'parse'],
    [['--endpoint-selector', 'app=vllm', '--endpoint-target-ports', '80a'], /^--endpoint-target-ports: "80a" is not a port/, 'parse'],
    [['--endpoint-selector', 'app=vllm', '--endpoint-target-ports', '70000'], /^--endpoint-target-ports: "70000" is not a port/, 'validate'],
    // strconv.Atoi reads a sign, so -1 parses and Validate refuses it (review of session 69).
    [['--endpoint-selector', 'app=vllm', '--endpoint-target-ports', '-1'], /^--endpoint-target-ports: "-1" is not a port/, 'validate'],
    [['--endpoint-selector', 'app=vllm', '--endpoint-target-ports', '0x1f40'], /^--endpoint-target-ports: "0x1f40" is not a port/, 'parse'],
    [['--pool-name', 'p', '--grpc-port', '08'], /^--grpc-port: must be a port number/, 'parse'],
    [['--pool-name', 'p', '--grpc-port', '1__0'], /^--grpc-port: must be a port number/, 'parse'],
    [['--pool-name', 'p', '--grpc-port', '99999999999999999999'], /^--grpc-port: must be a port number/, 'parse'],
  ])('rejects %j', (argv, message, stage) => {
    let error: unknown;
    try {
      parseArgs(argv, { POD_NAME: 'epp-5d9c7b8f4-x2x9q' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(message);
    expect(error instanceof FlagParseError).toBe(stage === 'parse');
  });

  // pflag's IntVar parses with strconv.ParseInt(s, 0, 64), its IntSlice with strconv.Atoi, its DurationVar with
  // time.ParseDuration (go/src/strconv/atoi.go, go/src/time/format.go): signs, base prefixes and digit separators are
  // values there, and "-0s" is 0 (review of session 69).
  test('integers and durations read as Go reads them: 0x2352, 0o21, 0b1_0, +9002, 1_000; +8000 as a target port; -0s and +50ms', () => {
    const base = ['--pool-name', 'p'];
    expect(parseArgs([...base, '--grpc-port', '0x2352'])!.grpcPort).toBe(9042);
    expect(parseArgs([...base, '--grpc-port', '0o21'])!.grpcPort).toBe(17);
    expect(parseArgs([...base, '--grpc-port', '021'])!.grpcPort).toBe(17);
    expect(parseArgs([...base, '--grpc-port', '0b1_0'])!.grpcPort).toBe(2);
    expect(parseArgs([...base, '--grpc-port', '+9002'])!.grpcPort).toBe(9002);
    expect(parseArgs([...base, '--metrics-scrape-budget', '1_000'])!.metricsScrapeBudget).toBe(1000);
    expect(parseArgs([...base, '--drain-timeout=-0s'])!.drainTimeoutMs).toBe(0);
    expect(parseArgs([...base, '--refresh-metrics-interval=+50ms'])!.refreshMetricsIntervalMs).toBe(50);
    expect(parseArgs(['--endpoint-selector', 'app=vllm', '--endpoint-target-ports', '+8000,08001'], { POD_NAME: 'epp-5d9c7b8f4-x2x9q' })!.endpointSelector!.targetPorts)
      .toEqual([8000, 8001]);
  });

  test('--metrics-scrape-mode and --metrics-scrape-workers: worker threads by default, errors name the allowed values', () => {
    const base = ['--endpoints', '127.0.0.1:8000'];
    expect(parseArgs(base)).toMatchObject({ metricsScrapeMode: 'worker', metricsScrapeWorkers: 1 });
    expect(parseArgs([...base, '--metrics-scrape-mode', 'adaptive'])?.metricsScrapeMode).toBe('adaptive');
    expect(parseArgs([...base, '--metrics-scrape-workers=3'])?.metricsScrapeWorkers).toBe(3);
    expect(() => parseArgs([...base, '--metrics-scrape-mode', 'threads'])).toThrow(/--metrics-scrape-mode: must be worker, adaptive, event-loop, got "threads"/);
    expect(() => parseArgs([...base, '--metrics-scrape-workers', '0'])).toThrow(/--metrics-scrape-workers: must be 1 to 64, got 0/);
    expect(() => parseArgs([...base, '--metrics-scrape-mode', 'event-loop', '--metrics-scrape-workers', '2'])).toThrow(/applies to --metrics-scrape-mode=worker only/);
    expect(parseArgs(base)?.metricsScrapeBudget).toBe(1000);
    expect(parseArgs([...base, '--metrics-scrape-budget', '0'])?.metricsScrapeBudget).toBe(0);
    expect(() => parseArgs([...base, '--metrics-scrape-budget', '-5'])).toThrow(/--metrics-scrape-budget: must be >= 0 \(0: no budget\), got -5/);
    expect(() => parseArgs([...base, '--metrics-scrape-mode', 'adaptive', '--metrics-scrape-budget', '500'])).toThrow(/--metrics-scrape-budget applies to --metrics-scrape-mode=worker only/);
  });

  test('--help documents every flag', () => {
    expect(parseArgs(['--help'])).toBeUndefined();
    for (const flag of ['--grpc-port', '--grpc-health-port', '--metrics-port', '--config-file', '--config-text', '--pool-name',
      '--pool-namespace', '--endpoints', '--refresh-metrics-interval', '--cert-path', '--poolName', '--secureServing']) {
      expect(usage()).toContain(flag);
    }
  });
});

describe('the built binary', () => {
  const main = path.join(__dirname, '..', 'dist', 'main.js');
  const built = spawnSync('node', [main, '--help']).status === 0;

  (built ? test : test.skip)('exits 2 with the message on a bad flag and 0 on --help', () => {
    const bad = spawnSync('node', [main, '--pool-name', 'p', '--nope'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('kvroute-epp: unknown flag --nope; see --help\n');
    expect(execFileSync('node', [main, '--help'], { encoding: 'utf8' })).toContain('Usage: kvroute-epp');
  });

  // llm-d-router v0.10.0 cmd/epp/runner/runner.go Run: `pflag.Parse()` on pflag's CommandLine, made
  // `NewFlagSet(os.Args[0], ExitOnError)`, whose Parse answers a parse error `case ExitOnError: fmt.Println(err);
  // os.Exit(2)` (spf13/pflag flag.go); then `if err := opts.Validate(); err != nil { ...; return err }`, and
  // cmd/epp/main.go run: `if err := runner.NewRunner().Run(ctx); err != nil { return 1 }`.
  (built ? test : test.skip)('a value of the wrong type exits 2, as pflag\'s parse; a value refused after parsing exits 1, as upstream\'s Validate', () => {
    const run = (...argv: string[]) => {
      const r = spawnSync('node', [main, ...argv], { encoding: 'utf8' });
      return { status: r.status, stderr: r.stderr };
    };
    expect(run('--pool-name', 'p', '--grpc-port', 'abc')).toEqual({ status: 2, stderr: 'kvroute-epp: --grpc-port: must be a port number from 0 to 65535, got "abc"\n' });
    expect(run('--pool-name', 'p', '--refresh-metrics-interval', '50').status).toBe(2);
    expect(run('--pool-name', 'p', '--config-file', 'a', '--config-text', 'b')).toEqual({ status: 1, stderr: 'kvroute-epp: --config-file and --config-text are exclusive\n' });
    expect(run('--grpc-port', '9002').stderr).toMatch(/^kvroute-epp: one of --pool-name .* is required/);
    expect(run('--grpc-port', '9002').status).toBe(1);
    expect(run('--pool-name', 'p', '--grpc-port', '70000').status).toBe(1);
  });

  (built ? test : test.skip)('a --host that does not resolve fails start-up naming --host, not grpc-js\'s "Name resolution failed"', () => {
    // .invalid never resolves (RFC 6761 §6.4).
    const run = spawnSync('node', [main, '--host', 'notanip.invalid', '--endpoints', '127.0.0.1:1'], { encoding: 'utf8', timeout: 30_000 });
    expect(run.status).toBe(1);
    expect(run.stdout + run.stderr).toMatch(/"error":"--host \\"notanip.invalid\\": not an address or a name this machine resolves/);
  });

  /** A config that starts, written into the FIFO once the signals are sent. */
  const STARTING_CONFIG = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: queue-scorer\nschedulingProfiles:\n- name: default\n  plugins:\n  - pluginRef: queue-scorer\n';

  /**
   * The EPP binary starting up on a config file that is a FIFO nobody has written yet; `signal` runs once the EPP has
   * opened it to read (start-up under way), then the config is written. Resolves with the exit and what it printed.
   */
  async function signalDuringStartUp(signal: (child: ChildProcess) => Promise<void>): Promise<{ exit: { code: number | null; signal: string | null }; output: string }> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-start-up-signal-'));
    const config = path.join(dir, 'config.yaml');
    execFileSync('mkfifo', [config]);
    const child = spawn('node', [main, '--endpoints', '127.0.0.1:1', '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', '0',
      '--host', '127.0.0.1', '--config-file', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const exit = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, sig) => resolve({ code, signal: sig })));
    let writer: fs.promises.FileHandle | undefined;
    try {
      // Opening the FIFO to write completes once the EPP has opened it to read its config: start-up is under way.
      writer = await fs.promises.open(config, 'w');
      await signal(child);
      // An EPP the signal killed has gone and the write fails (EPIPE); the exit says so.
      await writer.write(STARTING_CONFIG).catch(() => undefined);
      await writer.close().catch(() => undefined);
      return { exit: await exit, output };
    } finally {
      await writer?.close().catch(() => undefined);
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  // llm-d-router v0.10.0 cmd/epp/main.go run (GIE v1.5.0's the same): ctrl.SetupSignalHandler() comes before
  // runner.Run, so a SIGTERM during start-up cancels the run's context; it stops once started and returns nil, exit 0.
  (built ? test : test.skip)('a SIGTERM during start-up stops the EPP once started, exit 0, instead of killing it by the signal', async () => {
    const { exit, output } = await signalDuringStartUp(async (child) => {
      child.kill('SIGTERM');
    });
    expect(exit).toEqual({ code: 0, signal: null });
    expect(output).toContain('"event":"listening"');
    expect(output).toMatch(/"msg":"shutting down".*"signal":"SIGTERM"/);
  }, 30_000);

  // controller-runtime v0.23.3 pkg/manager/signals/signal.go (SetupSignalHandler = k8s.io/apiserver pkg/server/signal.go
  // SetupSignalContext), which llm-d-router v0.10.0 cmd/epp/main.go calls: the first signal cancels the context, the
  // second is `os.Exit(1) // second signal. Exit directly.`, whether the runner has started serving or not.
  (built ? test : test.skip)('a second signal during start-up exits 1 at once, before the EPP serves, as controller-runtime\'s signal handler', async () => {
    // Both signals arrive while it reads (a synchronous read: Node runs the handlers once it returns, still before
    // anything listens); without the exit on the second the EPP would serve, then stop (exit 0).
    const { exit, output } = await signalDuringStartUp(async (child) => {
      child.kill('SIGTERM');
      child.kill('SIGINT');
      await new Promise((resolve) => setTimeout(resolve, 200));
    });
    expect(exit).toEqual({ code: 1, signal: null });
    expect(output).not.toContain('"event":"listening"');
  }, 30_000);

  (built ? test : test.skip)('a port already in use fails start-up naming the address and the server', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as net.AddressInfo).port;
    try {
      const grpc = spawnSync('node', [main, '--host', '127.0.0.1', '--grpc-port', String(port), '--grpc-health-port', '0', '--metrics-port', '0', '--endpoints', '127.0.0.1:1'], { encoding: 'utf8', timeout: 30_000 });
      expect(grpc.status).toBe(1);
      expect(grpc.stdout + grpc.stderr).toContain(`cannot listen on 127.0.0.1:${port} for ext_proc`);
      // Every line stays a JSON record (the --zap-encoder help: "logs are always JSON lines"): grpc-js's own report of
      // the failed bind went to stderr as plain text ("E No address added out of total 1 resolved").
      const records = grpc.stderr.split('\n').filter((l) => l !== '').map((l) => {
        try {
          return (JSON.parse(l) as { logger?: string; level?: string }).logger ?? 'kvroute';
        } catch {
          return `not JSON: ${l}`;
        }
      });
      expect(records.filter((r) => r.startsWith('not JSON'))).toEqual([]);
      expect(records).toContain('grpc-js');
      const metrics = spawnSync('node', [main, '--host', '127.0.0.1', '--grpc-port', '0', '--grpc-health-port', '0', '--metrics-port', String(port), '--endpoints', '127.0.0.1:1'], { encoding: 'utf8', timeout: 30_000 });
      expect(metrics.status).toBe(1);
      expect(metrics.stdout + metrics.stderr).toContain(`cannot listen on 127.0.0.1:${port} for metrics (--host, --metrics-port): listen EADDRINUSE`);
    } finally {
      taken.close();
    }
  });
});

describe('llm-d-router v0.10.0 flags (pkg/epp/server/options.go AddFlags, Complete, parseTLSVersion @ v0.10.0)', () => {
  test('--drain-timeout is the window after SIGTERM in which new streams are still accepted (cmd/epp/runner/runner.go runWithGracefulShutdown), its own flag beside --shutdown-grace-period; 0 allowed; kvroute\'s default 0, upstream\'s 30s', () => {
    expect(parseArgs(['--pool-name', 'p'], {})).toMatchObject({ drainTimeoutMs: 0, shutdownGracePeriodMs: 120_000 });
    expect(parseArgs(['--pool-name', 'p', '--drain-timeout', '45s'], {})).toMatchObject({ drainTimeoutMs: 45_000, shutdownGracePeriodMs: 120_000 });
    expect(parseArgs(['--pool-name', 'p', '--drain-timeout=10s', '--shutdown-grace-period', '20s'], {})).toMatchObject({ drainTimeoutMs: 10_000, shutdownGracePeriodMs: 20_000 });
    expect(parseArgs(['--pool-name', 'p', '--drain-timeout=0s'], {})!.drainTimeoutMs).toBe(0);
    expect(() => parseArgs(['--pool-name', 'p', '--drain-timeout', 'soon'], {})).toThrow(/^--drain-timeout: /);
  });

  test('--allow-experimental-plugins and --enable-grpc-stream-metrics start the EPP and are reported as ignored; --emit-endpoint-scores takes effect (llmd-v0.10-flags-e2e.test.ts)', () => {
    expect(parseArgs(['--pool-name', 'p', '--allow-experimental-plugins', '--enable-grpc-stream-metrics=true', '--emit-endpoint-scores=false'], {})!.ignoredFlags)
      .toEqual(['--allow-experimental-plugins', '--enable-grpc-stream-metrics']);
    expect(parseArgs(['--pool-name', 'p'], {})!.emitEndpointScores).toBe(false);
    expect(parseArgs(['--pool-name', 'p', '--emit-endpoint-scores'], {})!.emitEndpointScores).toBe(true);
    expect(() => parseArgs(['--pool-name', 'p', '--emit-endpoint-scores=maybe'], {})).toThrow('--emit-endpoint-scores: must be true or false, got "maybe"');
  });

  test('--grpc-max-recv-msg-size / --grpc-max-send-msg-size: Kubernetes quantities with an optional trailing B, not negative, that Quantity.AsInt64 holds (llm-d-router v0.10.0 pkg/epp/server/options.go Complete, sanitizeSizeString)', () => {
    const sizes = (...flags: string[]) => {
      const o = parseArgs(['--pool-name', 'p', ...flags], {})!;
      return [o.grpcMaxRecvMsgSize, o.grpcMaxSendMsgSize];
    };
    expect(sizes()).toEqual([undefined, undefined]);
    expect(sizes('--grpc-max-recv-msg-size', '10MiB', '--grpc-max-send-msg-size', '25MB')).toEqual([10 * 1024 * 1024, 25_000_000]);
    expect(sizes('--grpc-max-recv-msg-size', ' 1048576 ', '--grpc-max-send-msg-size', '0')).toEqual([1_048_576, 0]);
    expect(() => sizes('--grpc-max-recv-msg-size', '-1Mi')).toThrow('--grpc-max-recv-msg-size must be non-negative, got "-1Mi"');
    expect(() => sizes('--grpc-max-send-msg-size', 'lots')).toThrow(/^--grpc-max-send-msg-size must be a Kubernetes quantity/);
    // grpc-js's lengths are 32-bit, so what upstream takes from 2Gi up is -1, no limit.
    expect(sizes('--grpc-max-recv-msg-size', '2Gi', '--grpc-max-send-msg-size', '4GiB')).toEqual([-1, -1]);
    expect(sizes('--grpc-max-recv-msg-size', '2147483647', '--grpc-max-send-msg-size', '999999999999999999')).toEqual([2 ** 31 - 1, -1]);
    expect(sizes('--grpc-max-recv-msg-size', '1.5k', '--grpc-max-send-msg-size', '9.22337203685477580E')).toEqual([1500, -1]);
    expect(sizes('--grpc-max-recv-msg-size', '1.Mi', '--grpc-max-send-msg-size', '10Ti')).toEqual([2 ** 20, -1]);
    expect(sizes('--grpc-max-recv-msg-size', '99999Gi', '--grpc-max-send-msg-size', '0e100')).toEqual([-1, 0]);
  });

  // llm-d-router v0.10.0 pkg/epp/server/options.go Complete: resource.ParseQuantity, then q.AsInt64(), false
  // ("overflows maximum supported size") whenever ParseQuantity left its int64 fast path or the int64Amount has a
  // negative scale (k8s.io/apimachinery v0.35.7 pkg/api/resource/quantity.go ParseQuantity, amount.go AsInt64).
  test.each([
    ['4Ei', 'a binary suffix whose precision (15 - digits - exponent*3/10 - 1) is negative: every Pi and Ei'],
    ['1Pi', 'the same: 1Pi'],
    ['100Ti', 'the same: Ti takes at most 2 digits'],
    ['100000Gi', 'the same: Gi takes at most 5 digits'],
    ['1.5Mi', 'a binary suffix with a fraction'],
    ['9223372036854775807', 'more than 18 digits (precision 18 - digits < 0), math.MaxInt64 included'],
    ['1000000000000000000', 'more than 18 digits though 1E is taken'],
    ['8Ei', 'past math.MaxInt64'],
    ['10E', 'a scale past math.MaxInt64 (positiveScaleInt64 overflows)'],
    ['1e100', 'the same'],
    ['1000m', 'a negative scale (int64Amount scale -3), though a whole number'],
    ['1.0', 'a fraction digit (scale -1), though a whole number'],
    ['0m', 'a negative scale, though zero'],
    ['0.5', 'a fraction'],
    ['1e-1000', 'a scale below Nano (inf.Dec)'],
  ])('%s is refused as upstream refuses it: %s', (value) => {
    const parse = (flag: string) => parseArgs(['--pool-name', 'p', flag, value], {});
    expect(() => parse('--grpc-max-recv-msg-size')).toThrow(`--grpc-max-recv-msg-size overflows maximum supported size: ${value}`);
    expect(() => parse('--grpc-max-send-msg-size')).toThrow(`--grpc-max-send-msg-size overflows maximum supported size: ${value}`);
  });

  test('--tls-min-version: upstream\'s four Go names in Node\'s spelling with secure serving, ignored without it, others refused with parseTLSVersion\'s message (llm-d-router v0.10.0 pkg/epp/server/options.go)', () => {
    const floor = (...flags: string[]) => parseArgs(['--pool-name', 'p', ...flags], {})!;
    expect(floor('--secure-serving').tlsMinVersion).toBeUndefined();
    expect(floor('--secure-serving', '--tls-min-version', 'VersionTLS13').tlsMinVersion).toBe('TLSv1.3');
    expect(floor('--cert-path', '/certs', '--tls-min-version', 'VersionTLS12').tlsMinVersion).toBe('TLSv1.2');
    expect(floor('--secure-serving', '--tls-min-version', 'VersionTLS11').tlsMinVersion).toBe('TLSv1.1');
    expect(floor('--secure-serving', '--tls-min-version', 'VersionTLS10')).toMatchObject({ tlsMinVersion: 'TLSv1', ignoredFlags: [] });
    // runserver.go applies it to the secure listener only.
    const plaintext = floor('--tls-min-version', 'VersionTLS13');
    expect([plaintext.tlsMinVersion, plaintext.ignoredFlags]).toEqual([undefined, ['--tls-min-version']]);
    // options.go Complete parses it only when non-empty.
    const empty = floor('--secure-serving', '--tls-min-version', '');
    expect([empty.tlsMinVersion, empty.ignoredFlags]).toEqual([undefined, []]);
    for (const bad of ['TLSv1.3', 'versiontls12']) {
      expect(() => floor('--secure-serving', '--tls-min-version', bad))
        .toThrow(`--tls-min-version: unknown TLS version ${JSON.stringify(bad)}; supported values: VersionTLS10, VersionTLS11, VersionTLS12, VersionTLS13`);
    }
  });

  test('--tls-cipher-suites: Go crypto/tls names, trimmed, empty entries skipped, repeated flags appended, unknown names refused with parseCipherSuites\' message (llm-d-router v0.10.0 pkg/epp/server/options.go)', () => {
    const suites = (...flags: string[]) => parseArgs(['--pool-name', 'p', ...flags], {})!;
    expect(suites('--secure-serving').tlsCipherSuites).toBeUndefined();
    expect(suites('--secure-serving', '--tls-cipher-suites', ' TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,,TLS_AES_128_GCM_SHA256 ', '--tls-cipher-suites', 'TLS_RSA_WITH_3DES_EDE_CBC_SHA').tlsCipherSuites)
      .toEqual(['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_AES_128_GCM_SHA256', 'TLS_RSA_WITH_3DES_EDE_CBC_SHA']);
    // Complete applies a list only when it names a suite; runserver.go applies it to the secure listener only.
    for (const flags of [['--secure-serving', '--tls-cipher-suites', ''], ['--secure-serving', '--tls-cipher-suites', ',']]) expect(suites(...flags).tlsCipherSuites).toBeUndefined();
    const plaintext = suites('--tls-cipher-suites', 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256');
    expect([plaintext.tlsCipherSuites, plaintext.ignoredFlags]).toEqual([undefined, ['--tls-cipher-suites']]);
    for (const bad of ['ECDHE-RSA-AES128-GCM-SHA256', 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305']) {
      expect(() => suites('--secure-serving', '--tls-cipher-suites', `TLS_AES_128_GCM_SHA256,${bad}`)).toThrow(`--tls-cipher-suites: unknown cipher suite ${JSON.stringify(bad)}`);
    }
  });

  test('--tls-cipher-suites is a pflag string slice (spf13/pflag v1.0.10 string_slice.go readAsCSV, as llm-d-router v0.10.0 options.go fs.StringSliceVar declares it): an empty use adds nothing, each use is one CSV record', () => {
    const suites = (...flags: string[]) => parseArgs(['--pool-name', 'p', '--secure-serving', ...flags], {})!.tlsCipherSuites;
    const [a, b] = ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384'];
    // readAsCSV("") is []string{}: appended to the earlier list, it leaves the list as it was.
    expect(suites('--tls-cipher-suites', a, '--tls-cipher-suites', '')).toEqual([a]);
    expect(suites('--tls-cipher-suites', '', '--tls-cipher-suites', a)).toEqual([a]);
    // encoding/csv: a field may be double-quoted, a doubled quote inside it is one quote, a quote elsewhere is an error.
    expect(suites('--tls-cipher-suites', `"${a}","${b}"`)).toEqual([a, b]);
    expect(suites('--tls-cipher-suites', `"${a}"`, '--tls-cipher-suites', `${b},`)).toEqual([a, b]);
    expect(() => suites('--tls-cipher-suites', `"${a},${b}"`)).toThrow(`--tls-cipher-suites: unknown cipher suite ${JSON.stringify(`${a},${b}`)}`);
    expect(() => suites('--tls-cipher-suites', `"TLS_""X"`)).toThrow('--tls-cipher-suites: unknown cipher suite "TLS_\\"X"');
    expect(() => suites('--tls-cipher-suites', `${a}"`)).toThrow('--tls-cipher-suites: bare " in non-quoted-field');
    expect(() => suites('--tls-cipher-suites', `"${a}" ,${b}`)).toThrow('--tls-cipher-suites: extraneous or missing " in quoted-field');
    expect(() => suites('--tls-cipher-suites', `"${a}`)).toThrow('--tls-cipher-suites: extraneous or missing " in quoted-field');
  });

  test.each([
    ['--metrics-cert-dir', '/certs', /^--metrics-cert-dir is not supported: \/metrics is plain HTTP/],
    ['--metrics-client-ca-file', '/ca.pem', /^--metrics-client-ca-file is not supported: \/metrics cannot require client certificates/],
  ])('%s, which ignoring would weaken security, is refused with the reason', (flag, value, message) => {
    expect(() => parseArgs(['--pool-name', 'p', flag, value], {})).toThrow(message);
  });
});
