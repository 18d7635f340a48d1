import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as YAML from 'yaml';
import { CLUSTERS } from '../lib/clusters';
import { KUSTOMIZATION_FILE, synthCluster } from '../lib/synth';
import { REPO } from './support/paths';

const DIST = path.join(REPO, 'dist');
const STALE = 'dist/ is stale: run `npm run synth` and commit the result';

describe('committed dist/', () => {
  let tmp: string;
  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kvroute-dist-')); });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('holds exactly one folder per cluster profile', () => {
    const folders = fs.readdirSync(DIST).filter((f) => fs.statSync(path.join(DIST, f)).isDirectory()).sort();
    expect({ folders, hint: STALE }).toEqual({ folders: CLUSTERS.map((c) => c.name).sort(), hint: STALE });
  });

  test.each(CLUSTERS.map((c) => [c.name, c] as const))('%s matches a fresh synth, file for file', (name, profile) => {
    const fresh = path.join(tmp, name);
    synthCluster(profile, fresh);
    const committed = path.join(DIST, name);
    const files = (dir: string) => fs.readdirSync(dir).sort();
    expect({ files: files(committed), hint: STALE }).toEqual({ files: files(fresh), hint: STALE });
    for (const f of files(fresh)) {
      const same = fs.readFileSync(path.join(committed, f), 'utf8') === fs.readFileSync(path.join(fresh, f), 'utf8');
      expect({ file: `${name}/${f}`, same, hint: STALE }).toEqual({ file: `${name}/${f}`, same: true, hint: STALE });
    }
  });

  test.each(CLUSTERS.map((c) => [c.name] as const))('%s: the kustomization lists every manifest in the folder', (name) => {
    const dir = path.join(DIST, name);
    const k = YAML.parse(fs.readFileSync(path.join(dir, KUSTOMIZATION_FILE), 'utf8'));
    expect(k.kind).toBe('Kustomization');
    expect([...k.resources].sort()).toEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.k8s.yaml')).sort());
  });
});
