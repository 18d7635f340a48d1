import {
  ACTIVE_PORTS_ANNOTATION,
  LEGACY_ACTIVE_PORTS_ANNOTATION,
  PoolSpecError,
  labelSelectorString,
  parseInferencePool,
  podEndpoints,
  selectorMatches,
} from '../src/datastore/inference-pool';
import { fakePod, fakePoolV1, fakePoolV1alpha2 } from '@kvroute/testkit';

describe('parseInferencePool', () => {
  it('reads the v1 shape (selector.matchLabels, targetPorts[0].number)', () => {
    const spec = parseInferencePool({ ...fakePoolV1('pool', { app: 'vllm', tier: 'decode' }, 8000), metadata: { name: 'pool', namespace: 'ns', resourceVersion: '7' } });
    expect(spec).toEqual({
      apiVersion: 'inference.networking.k8s.io/v1',
      name: 'pool',
      namespace: 'ns',
      selector: { app: 'vllm', tier: 'decode' },
      targetPorts: [8000],
      resourceVersion: '7',
    });
  });

  it('reads the v1alpha2 shape (selector map, targetPortNumber)', () => {
    const spec = parseInferencePool(fakePoolV1alpha2('pool', { 'llm-d.ai/inferenceServing': 'true' }, 8000));
    expect(spec.apiVersion).toBe('inference.networking.x-k8s.io/v1alpha2');
    expect(spec.selector).toEqual({ 'llm-d.ai/inferenceServing': 'true' });
    expect(spec.targetPorts).toEqual([8000]);
  });

  it('reads every v1 target port, in order (GIE ≥ v1.1.0: each a distinct endpoint per pod)', () => {
    expect(parseInferencePool(fakePoolV1('pool', { a: 'b' }, [8000, 8001, 8002])).targetPorts).toEqual([8000, 8001, 8002]);
  });

  it('uses the version it was fetched as when the object does not say', () => {
    const { apiVersion: _omit, ...obj } = fakePoolV1alpha2('pool', { a: 'b' }, 9000);
    expect(parseInferencePool(obj, 'inference.networking.x-k8s.io/v1alpha2').targetPorts).toEqual([9000]);
  });

  const invalid: Array<[string, unknown, RegExp]> = [
    ['not an object', 'x', /not an object/],
    ['unknown version', { ...fakePoolV1('p', { a: 'b' }, 1), apiVersion: 'inference.networking.x-k8s.io/v1alpha1' }, /unsupported apiVersion/],
    ['v1 without matchLabels', { ...fakePoolV1('p', { a: 'b' }, 1), spec: { selector: {}, targetPorts: [{ number: 1 }] } }, /matchLabels is missing/],
    ['v1 without ports', { ...fakePoolV1('p', { a: 'b' }, 1), spec: { selector: { matchLabels: { a: 'b' } }, targetPorts: [] } }, /targetPorts is empty/],
    ['bad port', fakePoolV1alpha2('p', { a: 'b' }, 70000), /target port 70000 is not a port number/],
    ['a bad second v1 port', fakePoolV1('p', { a: 'b' }, [8000, 0]), /target port 0 is not a port number/],
    ['a repeated v1 port (the CRD: port number must be unique)', fakePoolV1('p', { a: 'b' }, [8000, 8001, 8000]), /lists port 8000 twice/],
    ['nine v1 ports (the CRD: maxItems 8)', fakePoolV1('p', { a: 'b' }, [1, 2, 3, 4, 5, 6, 7, 8, 9]), /lists 9 ports, at most 8/],
    ['v1alpha2 shape under v1', { ...fakePoolV1alpha2('p', { a: 'b' }, 1), apiVersion: 'inference.networking.k8s.io/v1' }, /matchLabels is missing/],
    ['empty selector', fakePoolV1('p', {}, 8000), /selector is empty/],
    ['non-string selector value', { ...fakePoolV1alpha2('p', { a: 'b' }, 1), spec: { selector: { a: 1 }, targetPortNumber: 1 } }, /not a string/],
  ];
  it.each(invalid)('rejects %s', (_what, obj, message) => {
    expect(() => parseInferencePool(obj)).toThrow(PoolSpecError);
    expect(() => parseInferencePool(obj)).toThrow(message);
  });
});

describe('podEndpoints (GIE v1.5.0 podUpdateOrAddIfNotExist)', () => {
  const pool = { selector: { app: 'vllm' }, targetPorts: [8000] };
  const podEndpoint = (pod: Parameters<typeof podEndpoints>[0], p: Parameters<typeof podEndpoints>[1] = pool) => {
    const eps = podEndpoints(pod, p);
    expect(eps.length).toBeLessThanOrEqual(1);
    return eps[0];
  };

  it('turns a Ready pod with an IP into podIP:targetPort named <pod>-rank-0, with its labels', () => {
    const ep = podEndpoint(fakePod({ name: 'vllm-0', namespace: 'llm', ip: '10.1.2.3', labels: { app: 'vllm', role: 'decode' } }));
    expect(ep).toEqual({
      key: '10.1.2.3:8000',
      name: 'vllm-0-rank-0',
      namespace: 'llm',
      address: '10.1.2.3',
      port: 8000,
      labels: { app: 'vllm', role: 'decode' },
      podName: 'vllm-0',
      rank: 0,
    });
  });

  it('gives one endpoint per target port, named by its rank and scraped on its own port', () => {
    const eps = podEndpoints(fakePod({ name: 'dp', namespace: 'llm', ip: '10.0.0.9', labels: { app: 'vllm' } }), { ...pool, targetPorts: [8000, 8001, 8002] });
    expect(eps.map((e) => [e.key, e.name, e.podName, e.rank, e.metricsPort])).toEqual([
      ['10.0.0.9:8000', 'dp-rank-0', 'dp', 0, 8000],
      ['10.0.0.9:8001', 'dp-rank-1', 'dp', 1, 8001],
      ['10.0.0.9:8002', 'dp-rank-2', 'dp', 2, 8002],
    ]);
  });

  it('keeps only the ports the active-ports annotation names, ranks still by target-port position', () => {
    const several = { ...pool, targetPorts: [8000, 8001, 8002] };
    const pod = (value: string) => fakePod({ name: 'dp', ip: '10.0.0.9', labels: { app: 'vllm' }, annotations: { [ACTIVE_PORTS_ANNOTATION]: value } });
    expect(podEndpoints(pod('8002, 8000'), several).map((e) => e.name)).toEqual(['dp-rank-0', 'dp-rank-2']);
    // Entries that are not target ports, or not numbers, are ignored; Go's Sscanf("%d") reads leading digits.
    expect(podEndpoints(pod('9000,x,8001x'), several).map((e) => e.port)).toEqual([8001]);
    expect(podEndpoints(pod(''), several)).toEqual([]);
  });

  it('reads llm-d.ai/active-ports before GIE\'s inference.networking.k8s.io/active-ports (llm-d-router pkg/epp/datastore/datastore.go @ v0.10.0 extractActivePorts)', () => {
    expect(ACTIVE_PORTS_ANNOTATION).toBe('llm-d.ai/active-ports');
    expect(LEGACY_ACTIVE_PORTS_ANNOTATION).toBe('inference.networking.k8s.io/active-ports');
    const several = { ...pool, targetPorts: [8000, 8001, 8002] };
    const pod = (annotations: Record<string, string>) => fakePod({ name: 'dp', ip: '10.0.0.9', labels: { app: 'vllm' }, annotations });
    const ports = (annotations: Record<string, string>) => podEndpoints(pod(annotations), several).map((e) => e.port);
    expect(ports({ 'llm-d.ai/active-ports': '8001' })).toEqual([8001]);
    // The old key alone still counts.
    expect(ports({ 'inference.networking.k8s.io/active-ports': '8002' })).toEqual([8002]);
    // Both set: the new key wins, by being present, even when it names no valid port (the pod then serves none).
    expect(ports({ 'llm-d.ai/active-ports': '8000', 'inference.networking.k8s.io/active-ports': '8002' })).toEqual([8000]);
    expect(ports({ 'llm-d.ai/active-ports': '', 'inference.networking.k8s.io/active-ports': '8002' })).toEqual([]);
    expect(ports({ 'llm-d.ai/active-ports': '9000', 'inference.networking.k8s.io/active-ports': '8002' })).toEqual([]);
    // Neither: every target port.
    expect(ports({ 'llm-d.ai/other': '8000' })).toEqual([8000, 8001, 8002]);
  });

  it('brackets IPv6 pod IPs in the key', () => {
    expect(podEndpoint(fakePod({ name: 'p', ip: 'fd00::7', labels: { app: 'vllm' } }))?.key).toBe('[fd00::7]:8000');
  });

  it('skips pods that are not ready, have no IP, are terminating or do not match', () => {
    expect(podEndpoint(fakePod({ name: 'p', ip: '10.0.0.1', ready: false, labels: { app: 'vllm' } }))).toBeUndefined();
    expect(podEndpoint(fakePod({ name: 'p', labels: { app: 'vllm' } }))).toBeUndefined();
    expect(podEndpoint(fakePod({ name: 'p', ip: '10.0.0.1', deleting: true, labels: { app: 'vllm' } }))).toBeUndefined();
    expect(podEndpoint(fakePod({ name: 'p', ip: '10.0.0.1', labels: { app: 'other' } }))).toBeUndefined();
    expect(podEndpoint({ status: { podIP: '10.0.0.1' } })).toBeUndefined();
  });

  it('reads a typed client object whose deletionTimestamp is a Date', () => {
    const pod = fakePod({ name: 'p', ip: '10.0.0.1', labels: { app: 'vllm' } }) as { metadata: Record<string, unknown> };
    pod.metadata.deletionTimestamp = new Date();
    expect(podEndpoint(pod)).toBeUndefined();
  });
});

describe('selectors', () => {
  it('formats a selector canonically and matches labels', () => {
    expect(labelSelectorString({ b: '2', a: '1' })).toBe('a=1,b=2');
    expect(selectorMatches({ a: '1' }, { a: '1', b: '2' })).toBe(true);
    expect(selectorMatches({ a: '1' }, { a: '2' })).toBe(false);
    expect(selectorMatches({ a: '1' }, undefined)).toBe(false);
  });
});
