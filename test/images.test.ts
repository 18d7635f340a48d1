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

});

describe.each(['epp', 'sim'])('%s/Dockerfile', (pkgDir) => {
  const dockerfile = fs.readFileSync(path.join(REPO, pkgDir, 'Dockerfile'), 'utf8');

  test('copies the manifest of every workspace in both install stages, which npm ci needs to match the lockfile', () => {
    const root = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
    const installs = dockerfile.split(/^FROM /m).filter((stage) => /^RUN npm ci/m.test(stage));
    expect(installs).toHaveLength(2);
    for (const stage of installs) {
      for (const ws of root.workspaces as string[]) expect(stage).toContain(`COPY ${ws}/package.json ${ws}/`);
    }
  });

  test('runs the built entry point its package names as bin', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, pkgDir, 'package.json'), 'utf8'));
    const bin = Object.values(pkg.bin as Record<string, string>)[0];
    expect(dockerfile).toContain(`ENTRYPOINT ["node", "/app/${pkgDir}/${bin}"]`);
    expect(dockerfile).toMatch(new RegExp(`^RUN npm run build --workspace ${pkgDir}$`, 'm'));
  });
});
