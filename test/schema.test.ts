import { CLUSTERS, DEMO, withOverrides } from '../lib/clusters';
import { Manifest, synthProfile, synthProps } from './support/manifests';
import { ManifestValidator } from './support/schema';

const validator = new ManifestValidator();

const variants: [string, Manifest[]][] = [
  ...CLUSTERS.map((c) => [c.name, synthProfile(c)] as [string, Manifest[]]),
  ['v1 InferencePool', synthProps(withOverrides(DEMO, { endpointPicker: { poolApiGroup: 'inference.networking.k8s.io' } }))],
  ['central KV events', synthProps(withOverrides(DEMO, { decode: { prefixCachingHashAlgo: 'sha256_cbor_64bit', kvEvents: { mode: 'central' } } }))],
  ['full-duplex request bodies', synthProps(withOverrides(DEMO, { extProc: { requestBodyMode: 'full-duplex' } }))],
  ['vLLM as a non-root UID', synthProps(withOverrides(DEMO, { decode: { runAsUser: 2000 } }))],
];

describe.each(variants)('%s: every object is valid against its schema', (_name, manifests) => {
  test.each(manifests.map((m) => [`${m.kind}/${m.metadata.name}`, m] as const))('%s', (_id, manifest) => {
    expect(validator.validate(manifest)).toEqual([]);
  });
});

describe('the validator itself', () => {
  const demo = synthProfile(CLUSTERS[0]);
  const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x));

  test('rejects a misspelled field in a core object', () => {
    const d = clone(demo.find((m) => m.kind === 'Deployment')!);
    d.spec.template.spec.containers[0].imagePullPolice = 'Always';
    expect(validator.validate(d).join('\n')).toMatch(/must NOT have additional properties \(imagePullPolice\)/);
  });

  test('rejects a misspelled field in a custom resource', () => {
    const pool = clone(demo.find((m) => m.kind === 'InferencePool')!);
    pool.spec.targetPort = 8000;
    expect(validator.validate(pool).join('\n')).toMatch(/additional properties \(targetPort\)/);
  });

  test('rejects a wrong type and a bad enum value', () => {
    const dr = clone(demo.find((m) => m.kind === 'DestinationRule')!);
    dr.spec.trafficPolicy.loadBalancer.simple = 'ROUNDROBIN';
    expect(validator.validate(dr).join('\n')).toMatch(/must be equal to one of the allowed values/);
    const svc = clone(demo.find((m) => m.kind === 'Service')!);
    svc.spec.ports[0].port = '8000';
    expect(validator.validate(svc).join('\n')).toMatch(/port: must be integer/);
  });

  test('rejects bad metadata and unknown kinds', () => {
    const cm = clone(demo.find((m) => m.kind === 'ConfigMap')!);
    (cm.metadata as Record<string, unknown>).lables = {};
    expect(validator.validate(cm).join('\n')).toMatch(/metadata.*lables/);
    expect(validator.validate({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'x' } })).toEqual(['Widget/x: no schema for apiVersion example.com/v1 kind Widget']);
  });

  test('keeps free-form fields free where the schema says so (EnvoyFilter patch values)', () => {
    const ef = clone(demo.find((m) => m.kind === 'EnvoyFilter')!);
    ef.spec.configPatches[0].patch.value.anything_goes_here = true;
    expect(validator.validate(ef)).toEqual([]);
  });
});
