import { Testing } from 'cdk8s';
import { ClusterProfile } from '../../lib/clusters';
import { KvAwareRouting, KvAwareRoutingProps } from '../../lib/kv-aware-routing';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };

export function synthProps(props: KvAwareRoutingProps, id = 'test'): Manifest[] {
  const chart = new KvAwareRouting(Testing.app(), id, props);
  return Testing.synth(chart) as Manifest[];
}

/** The chart and its manifests, for tests that compare the objects with what the constructs expose. */
export function synthChart(props: KvAwareRoutingProps, id = 'test'): { chart: KvAwareRouting; manifests: Manifest[] } {
  const chart = new KvAwareRouting(Testing.app(), id, props);
  return { chart, manifests: Testing.synth(chart) as Manifest[] };
}

export function synthProfile(profile: ClusterProfile): Manifest[] {
  return synthProps(profile.routing, profile.name);
}

/** The one object of a kind (and name, when given); fails loudly when absent or ambiguous. */
export function one(manifests: Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
  if (found.length !== 1) {
    throw new Error(`expected exactly one ${kind}${name ? ` named ${name}` : ''}, found ${found.length}: `
      + manifests.filter((m) => m.kind === kind).map((m) => m.metadata.name).join(', '));
  }
  return found[0];
}

export function all(manifests: Manifest[], kind: string): Manifest[] {
  return manifests.filter((m) => m.kind === kind);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function container(deployment: Manifest, name: string): any {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const c = deployment.spec.template.spec.containers.find((x: any) => x.name === name);
  if (!c) throw new Error(`no container ${name} in ${deployment.metadata.name}`);
  return c;
}
