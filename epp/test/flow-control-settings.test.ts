import { defaultEndpointPickerConfig, FLOW_CONTROL_DEFAULTS, parseEndpointPickerConfig, renderEndpointPickerConfig } from '../src/config';
import { parseArgs, UsageError } from '../src/cli';
import { resolveFlowControl } from '../src/runner';

const base = ['--endpoints', '127.0.0.1:8000'];

describe('flow-control settings: flags over the config\'s flowControl over the defaults', () => {
  it('flags parse to typed values and are absent when not given', () => {
    expect(parseArgs(base)!.flowControl).toEqual({});
    expect(parseArgs([...base, '--flow-control=false', '--flow-control-max-queued', '8', '--flow-control-max-wait', '1.5s',
      '--flow-control-dispatch-per-tick', '2', '--flow-control-dispatch-interval', '20ms', '--flow-control-max-queued-bytes', '4096', '--flow-control-max-header-priority', '-5'])!.flowControl).toEqual({
      enabled: false, maxQueued: 8, maxQueuedBytes: 4096, maxWaitMs: 1500, dispatchPerTick: 2, dispatchIntervalMs: 20, maxHeaderPriority: -5,
    });
  });

  it.each([
    [['--flow-control-max-queued', '0'], '--flow-control-max-queued: must be an integer >= 1, got 0'],
    [['--flow-control-dispatch-per-tick', '0'], '--flow-control-dispatch-per-tick: must be an integer >= 1, got 0'],
    [['--flow-control-max-queued-bytes', '0'], '--flow-control-max-queued-bytes: must be an integer >= 1, got 0'],
    [['--flow-control-max-wait', 'soon'], '--flow-control-max-wait:'],
    [['--flow-control', 'false'], 'write --flow-control=false'],
    [['--flow-control-max-header-priority', '101'], '--flow-control-max-header-priority: must be an integer between -100 and 100 (x-kvroute-priority\'s range), got 101'],
  ])('rejects %j naming the flag', (argv, message) => {
    expect(() => parseArgs([...base, ...argv])).toThrow(UsageError);
    expect(() => parseArgs([...base, ...argv])).toThrow(message);
  });

  it('--flow-control-max-wait 0 is GIE\'s "no deadline"; other duration flags stay positive', () => {
    expect(parseArgs([...base, '--flow-control-max-wait', '0'])!.flowControl.maxWaitMs).toBe(Infinity);
    expect(() => parseArgs([...base, '--flow-control-dispatch-interval', '0'])).toThrow('must be positive');
  });

  it('without flags or config: on, with the documented defaults', () => {
    expect(resolveFlowControl(defaultEndpointPickerConfig())).toEqual({
      enabled: true, maxQueued: 1024, maxQueuedBytes: 128 * 1024 * 1024, maxWaitMs: 30_000, dispatchPerTick: 4, dispatchIntervalMs: 50, objectives: new Map(), maxHeaderPriority: 0, maxMessageTimeoutMs: 0, sessionFairness: true,
      bands: new Map(), defaultBand: { maxBytes: 1_000_000_000 },
    });
    expect(FLOW_CONTROL_DEFAULTS.enabled).toBe(true);
  });

  it('the config sets what no flag does; a flag wins over the config', () => {
    const config = parseEndpointPickerConfig(renderEndpointPickerConfig({
      ...defaultEndpointPickerConfig(),
      flowControl: { enabled: false, maxQueued: 64, maxQueuedBytes: 1_000_000, defaultRequestTTL: '5s', objectives: { batch: -2 }, maxHeaderPriority: 3 },
    }));
    expect(resolveFlowControl(config)).toEqual({
      enabled: false, maxQueued: 64, maxQueuedBytes: 1_000_000, maxWaitMs: 5_000, dispatchPerTick: 4, dispatchIntervalMs: 50, objectives: new Map([['batch', -2]]), maxHeaderPriority: 3, maxMessageTimeoutMs: 0, sessionFairness: true,
      bands: new Map(), defaultBand: { maxBytes: 1_000_000_000 },
    });
    expect(resolveFlowControl(config, parseArgs([...base, '--flow-control', '--flow-control-max-wait', '2s', '--ext-proc-max-message-timeout', '30s', '--flow-control-max-queued-bytes', '2000000', '--flow-control-max-header-priority', '10'])!.flowControl)).toMatchObject({
      enabled: true, maxQueued: 64, maxQueuedBytes: 2_000_000, maxWaitMs: 2_000, maxMessageTimeoutMs: 30_000, maxHeaderPriority: 10,
    });
  });
});
