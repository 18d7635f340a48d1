import * as fs from 'fs';
import * as path from 'path';
import { clusterProfile } from '../lib/clusters';
import { container, one, synthProfile } from './support/manifests';
import { REPO } from './support/paths';

/**
 * No Docker engine runs here, so the images cannot be built in CI; these checks keep each Dockerfile consistent with
 * the package it packages and the manifests that run it.
 */
describe('epp/Dockerfile', () => {
  const dockerfile = fs.readFileSync(path.join(REPO, 'epp', 'Dockerfile'), 'utf8');
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'epp', 'package.json'), 'utf8'));
  const eppDeployment = one(synthProfile(clusterProfile('demo')), 'Deployment', 'ms-llm-d-modelservice-epp');

  test('builds with the package\'s own build script and runs the file its bin names', () => {
    expect(dockerfile).toMatch(/^RUN npm run build --workspace epp$/m);
    const entry = /^ENTRYPOINT \["node", "\/app\/epp\/(.+)"\]$/m.exec(dockerfile);
    expect(entry?.[1]).toBe(pkg.bin['kvroute-epp']);
    expect(fs.existsSync(path.join(REPO, 'epp', 'src', path.basename(pkg.bin['kvroute-epp'], '.js') + '.ts'))).toBe(true);
  });

  test('exposes the ports and runs as the user the manifests expect', () => {
    const ports = /^EXPOSE (.+)$/m.exec(dockerfile)![1].split(/\s+/).map(Number).sort();
    const c = container(eppDeployment, 'epp');
    expect(ports).toEqual(c.ports.map((p: { containerPort: number }) => p.containerPort).sort());
    const sc = eppDeployment.spec.template.spec.securityContext;
    expect(/^USER (\d+):(\d+)$/m.exec(dockerfile)!.slice(1).map(Number)).toEqual([sc.runAsUser, sc.runAsGroup]);
  });

  test('copies the manifest of every workspace, which npm ci needs to match the lockfile', () => {
    const root = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
    for (const ws of root.workspaces as string[]) {
      expect(dockerfile).toContain(`COPY ${ws}/package.json ${ws}/`);
    }
  });
});
