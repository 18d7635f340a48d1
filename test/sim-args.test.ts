/**
 * The decode pods' `vllm serve` arguments, as synthesized, start the simulator's vLLM-compatible CLI with the settings
 * they mean: the local stack and the benchmarks stand in for exactly what the manifests deploy (a flag the simulator
 * did not know, or read differently from vLLM, would fail here).
 */
import { parseCli } from '@kvroute/sim';
import { CLUSTERS, DEMO, withOverrides } from '../lib/clusters';
import type { KvAwareRoutingProps } from '../lib/kv-aware-routing';
import { all, container, synthProfile, synthProps, type Manifest } from './support/manifests';

function vllmArgs(manifests: Manifest[]): string[] {
  const decode = all(manifests, 'Deployment').filter((d) => d.metadata.name.endsWith('-decode'));
  expect(decode).toHaveLength(1);
  // The kubelet expands $(POD_IP) from the pod's env before vLLM sees it.
  return (container(decode[0]!, 'vllm').args as string[]).map((a) => a.replace(/\$\(POD_IP\)/g, '10.0.0.7'));
}

function simOptions(args: string[]) {
  const r = parseCli(args);
  if (r.kind !== 'run') throw new Error('expected a run');
  return r.options;
}

describe('the manifests\' vllm serve arguments on the simulator', () => {
  test.each(CLUSTERS.map((c) => [c.name, c] as const))('%s', (_name, profile) => {
    const o = simOptions(vllmArgs(synthProfile(profile)));
    expect(o.port).toBe(8001);
    expect(o.enablePrefixCaching).toBe(true);
    expect(o.enablePromptTokensDetails).toBe(true);
    expect(o.blockSize).toBe(16);
    expect(o.gpuMemoryUtilization).toBeGreaterThan(0);
  });

  test('a pool with LoRA adapters: --enable-lora, --max-loras and vLLM\'s name=path items', () => {
    const props: KvAwareRoutingProps = withOverrides(DEMO, { decode: { loraAdapters: [{ name: 'sql', path: 'org/sql-lora' }, { name: 'chat', path: '/adapters/chat' }], maxLoras: 2, maxLoraRank: 32 } });
    const o = simOptions(vllmArgs(synthProps(props)));
    expect(o).toMatchObject({ enableLora: true, maxLoras: 2, loraModules: ['sql', 'chat'], loraModulePaths: { sql: 'org/sql-lora', chat: '/adapters/chat' } });
  });

  test('a pool with more adapters than GPU slots: --max-cpu-loras as well', () => {
    const loraAdapters = [{ name: 'sql', path: 'org/sql' }, { name: 'chat', path: 'org/chat' }, { name: 'summarize', path: 'org/sum' }];
    const args = vllmArgs(synthProps(withOverrides(DEMO, { decode: { loraAdapters } })));
    expect(args).toContain('--max-cpu-loras=3');
    expect(simOptions(args)).toMatchObject({ enableLora: true, loraModules: ['sql', 'chat', 'summarize'] });
  });

  test('a pool publishing KV events: the config vLLM gets is the one the simulator publishes with', () => {
    const props: KvAwareRoutingProps = withOverrides(DEMO, { decode: { kvEvents: {} } });
    const o = simOptions(vllmArgs(synthProps(props)));
    expect(o.kvEventsConfig).toMatchObject({ enable_kv_cache_events: true, publisher: 'zmq', endpoint: 'tcp://*:5557', replay_endpoint: 'tcp://*:5558' });
    expect(o.kvEventsConfig?.topic).toMatch(/^kv@10\.0\.0\.7:8000@/);
  });
});
