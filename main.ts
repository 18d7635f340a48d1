import * as fs from 'fs';
import * as path from 'path';
import { CLUSTERS } from './lib/clusters';
import { synthClusters } from './lib/synth';

// `npm run synth` runs this file; each cluster profile gets its own folder under dist/, which is replaced only once
// every profile synthesized. Not cdk8s-cli's CDK8S_OUTDIR: `cdk8s synth` empties that folder before it runs the app,
// so a profile with a bad value would leave the committed manifests deleted (cdk8s.yaml points it at a scratch folder).
// It takes no arguments: every profile is synthesized, always (a `--profile x` that was silently ignored would leave the
// user believing only x was written).
// `npm run synth --profile=x` (no `--`) passes no argument: npm takes the flag as a setting of its own and hands it to
// the script only as npm_config_profile, so it is refused as well rather than ignored.
const args = process.argv.slice(2);
const npmFlags = ['profile', 'cluster', 'clusters', 'out', 'outdir'].filter((name) => process.env[`npm_config_${name}`] !== undefined);
if (args.length > 0 || npmFlags.length > 0) {
  const given = args.length > 0 ? args.map((a) => JSON.stringify(a)) : npmFlags.map((name) => `--${name}=${JSON.stringify(process.env[`npm_config_${name}`])}`);
  const npmNote = args.length === 0 ? ` (npm read it as its own setting, npm_config_${npmFlags[0]})` : '';
  process.stderr.write(`npm run synth takes no arguments, got ${given.join(' ')}${npmNote}: it writes every profile in lib/clusters.ts into dist/<name>/\n`);
  process.exit(2);
}
process.exitCode = synthClusters(CLUSTERS, path.join(__dirname, 'dist'), undefined, 'lib/clusters.ts');
// Run by `cdk8s synth`, which expects its output folder to exist afterwards.
if (process.env.CDK8S_OUTDIR) fs.mkdirSync(process.env.CDK8S_OUTDIR, { recursive: true });
