import * as path from 'path';
import { CLUSTERS } from './lib/clusters';
import { synthCluster } from './lib/synth';

// `cdk8s synth` (npm run synth) sets CDK8S_OUTDIR to cdk8s.yaml's `output` after emptying it; each cluster profile
// gets its own folder there.
const outRoot = process.env.CDK8S_OUTDIR ?? 'dist';
for (const cluster of CLUSTERS) {
  const files = synthCluster(cluster, path.join(outRoot, cluster.name));
  console.log(`${cluster.name}: ${files.length} manifests -> ${path.join(outRoot, cluster.name)}`);
}
