import {
  PoolSpecError,
  labelSelectorString,
  parseInferencePool,
  podEndpoint,
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
      targetPort: 8000,
      resourceVersion: '7',
    });
  });

  it('reads the v1alpha2 shape (selector map, targetPortNumber)', () => {
    const spec = parseInferencePool(fakePoolV1alpha2('pool', { 'llm-d.ai/inferenceServing': 'true' }, 8000));
    expect(spec.apiVersion).toBe('inference.networking.x-k8s.io/v1alpha2');
    expect(spec.selector).toEqual({ 'llm-d.ai/inferenceServing': 'true' });
    expect(spec.targetPort).toBe(8000);
  });

  it('uses the version it was fetched as when the object does not say', () => {
    const { apiVersion: _omit, ...obj } = fakePoolV1alpha2('pool', { a: 'b' }, 9000);
    expect(parseInferencePool(obj, 'inference.networking.x-k8s.io/v1alpha2').targetPort).toBe(9000);
  });

  const invalid: Array<[string, unknown, RegExp]> = [
    ['not an object', 'x', /not an object/],
    ['unknown version', { ...fakePoolV1('p', { a: 'b' }, 1), apiVersion: 'inference.networking.x-k8s.io/v1alpha1' }, /unsupported apiVersion/],
    ['v1 without matchLabels', { ...fakePoolV1('p', { a: 'b' }, 1), spec: { selector: {}, targetPorts: [{ number: 1 }] } }, /matchLabels is missing/],
    ['v1 without ports', { ...fakePoolV1('p', { a: 'b' }, 1), spec: { selector: { matchLabels: { a: 'b' } }, targetPorts: [] } }, /targetPorts is empty/],
    ['bad port', fakePoolV1alpha2('p', { a: 'b' }, 70000), /target port 70000 is not a port number/],
    ['v1alpha2 shape under v1', { ...fakePoolV1alpha2('p', { a: 'b' }, 1), apiVersion: 'inference.networking.k8s.io/v1' }, /matchLabels is missing/],
    ['empty selector', fakePoolV1('p', {}, 8000), /selector is empty/],
    ['non-string selector value', { ...fakePoolV1alpha2('p', { a: 'b' }, 1), spec: { selector: { a: 1 }, targetPortNumber: 1 } }, /not a string/],
  ];
  it.each(invalid)('rejects %s', (_what, obj, message) => {
    expect(() => parseInferencePool(obj)).toThrow(PoolSpecError);
    expect(() => parseInferencePool(obj)).toThrow(message);
  });
});

describe('podEndpoint', () => {
  const pool = { selector: { app: 'vllm' }, targetPort: 8000 };

  it('turns a Ready pod with an IP into podIP:targetPort with its name and labels', () => {
    const ep = podEndpoint(fakePod({ name: 'vllm-0', namespace: 'llm', ip: '10.1.2.3', labels: { app: 'vllm', role: 'decode' } }), pool);
    expect(ep).toEqual({
      key: '10.1.2.3:8000',
      name: 'vllm-0',
      namespace: 'llm',
      address: '10.1.2.3',
      port: 8000,
      labels: { app: 'vllm', role: 'decode' },
    });
  });

  it('brackets IPv6 pod IPs in the key', () => {
    expect(podEndpoint(fakePod({ name: 'p', ip: 'fd00::7', labels: { app: 'vllm' } }), pool)?.key).toBe('[fd00::7]:8000');
  });

  it('skips pods that are not ready, have no IP, are terminating or do not match', () => {
    expect(podEndpoint(fakePod({ name: 'p', ip: '10.0.0.1', ready: false, labels: { app: 'vllm' } }), pool)).toBeUndefined();
    expect(podEndpoint(fakePod({ name: 'p', labels: { app: 'vllm' } }), pool)).toBeUndefined();
    expect(podEndpoint(fakePod({ name: 'p', ip: '10.0.0.1', deleting: true, labels: { app: 'vllm' } }), pool)).toBeUndefined();
    expect(podEndpoint(fakePod({ name: 'p', ip: '10.0.0.1', labels: { app: 'other' } }), pool)).toBeUndefined();
    expect(podEndpoint({ status: { podIP: '10.0.0.1' } }, pool)).toBeUndefined();
  });

  it('reads a typed client object whose deletionTimestamp is a Date', () => {
    const pod = fakePod({ name: 'p', ip: '10.0.0.1', labels: { app: 'vllm' } }) as { metadata: Record<string, unknown> };
    pod.metadata.deletionTimestamp = new Date();
    expect(podEndpoint(pod, pool)).toBeUndefined();
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
