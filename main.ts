import { CLUSTERS } from './lib/clusters';
import { synthClusters } from './lib/synth';

// `cdk8s synth` (npm run synth) sets CDK8S_OUTDIR to cdk8s.yaml's `output` after emptying it; each cluster profile
// gets its own folder there.
process.exitCode = synthClusters(CLUSTERS, process.env.CDK8S_OUTDIR ?? 'dist');
