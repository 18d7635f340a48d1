import * as fs from 'fs';
import * as path from 'path';
import { clusterProfile } from '../lib/clusters';
import { EndpointPicker } from '../lib/endpoint-picker';
import { container, one, synthProfile } from './support/manifests';
import { REPO } from './support/paths';

/**
 * No Docker engine runs here, so the images cannot be built in CI; these checks keep the one Dockerfile consistent
 * with the packages it ships and the manifests that run them.
 */
describe('Dockerfile', () => {
  const dockerfile = fs.readFileSync(path.join(REPO, 'Dockerfile'), 'utf8');
  const root = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
  const stages = dockerfile.split(/^FROM /m).slice(1);

  test.each(['epp', 'sim', 'gateway'])('%s: its bin is dist/main.js, the entry point the image runs from its folder', (pkgDir) => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, pkgDir, 'package.json'), 'utf8'));
    expect(Object.values(pkg.bin as Record<string, string>)).toEqual(['dist/main.js']);
    expect(fs.existsSync(path.join(REPO, pkgDir, 'src', 'main.ts'))).toBe(true);
    expect(root.workspaces).toContain(pkgDir);
  });

  test('the runtime stage runs dist/main.js from the package folder named by PACKAGE', () => {
    const runtime = stages[stages.length - 1]!;
    expect(runtime).toMatch(/^WORKDIR \/app\/\$\{PACKAGE\}$/m);
    expect(runtime).toMatch(/^ENTRYPOINT \["node", "dist\/main\.js"\]$/m);
  });

  test('the EPP container\'s command is the image\'s entry point with its Node flags added (the V8 heap flag by default), or no command', () => {
    const runtime = stages[stages.length - 1]!;
    const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(runtime)![1]!) as string[];
    for (const profile of ['demo', 'prod-ha', 'prod-precise']) {
      const epp = container(one(synthProfile(clusterProfile(profile)), 'Deployment', 'ms-llm-d-modelservice-epp'), 'epp');
      expect(epp.command).toEqual([entrypoint[0], ...EndpointPicker.DEFAULT_NODE_ARGS, ...entrypoint.slice(1)]);
      expect(epp.command).toContain('--initial-old-space-size=128');
    }
    const demo = clusterProfile('demo');
    const none = container(one(synthProfile({ ...demo, routing: { ...demo.routing, endpointPicker: { nodeArgs: [] } } }), 'Deployment', 'ms-llm-d-modelservice-epp'), 'epp');
    expect(none.command).toBeUndefined();
  });

  test('builds the package through its TypeScript project references, and installs only its production dependencies', () => {
    expect(dockerfile).toMatch(/npx tsc -b "\$\{PACKAGE\}\/tsconfig\.build\.json"/);
    expect(dockerfile).toMatch(/npm ci --workspace "\$\{PACKAGE\}" --omit=dev/);
    // npm ci checks every workspace's package.json against the lockfile: they are copied from the workspace list.
    expect(dockerfile).toContain(`node -p "require('./package.json').workspaces.join(' ')"`);
  });

  test('runs as the user the EPP Deployment expects, and the EPP container uses the documented ports', () => {
    const eppDeployment = one(synthProfile(clusterProfile('demo')), 'Deployment', 'ms-llm-d-modelservice-epp');
    const sc = eppDeployment.spec.template.spec.securityContext;
    expect(/^USER (\d+):(\d+)$/m.exec(dockerfile)!.slice(1).map(Number)).toEqual([sc.runAsUser, sc.runAsGroup]);
    const ports = container(eppDeployment, 'epp').ports.map((p: { containerPort: number }) => p.containerPort).sort();
    for (const port of ports) expect(dockerfile).toContain(`${port} (`);
  });

  test('the EPP\'s preStop command runs in its image: a Debian-based node image, whose coreutils has sleep', () => {
    const ha = one(synthProfile(clusterProfile('prod-ha')), 'Deployment', 'ms-llm-d-modelservice-epp');
    expect(container(ha, 'epp').lifecycle.preStop.exec.command[0]).toBe('sleep');
    expect(/^ARG NODE_IMAGE=(\S+)$/m.exec(dockerfile)![1]).toMatch(/^node:\d+-(bookworm|trixie)(-slim)?$/);
  });

  test('the build args COMMIT_SHA and BUILD_REF (GIE v1.5.0 Dockerfile\'s) reach the runtime as the env the EPP reports in inference_extension_info', () => {
    const runtime = stages[stages.length - 1]!;
    expect(runtime).toMatch(/^ARG COMMIT_SHA=unknown$/m);
    expect(runtime).toMatch(/^ARG BUILD_REF=unknown$/m);
    expect(runtime).toMatch(/^ENV .*KVROUTE_COMMIT_SHA=\$\{COMMIT_SHA\} KVROUTE_BUILD_REF=\$\{BUILD_REF\}$/m);
  });

  test('the build context leaves out installed and built files', () => {
    const ignore = fs.readFileSync(path.join(REPO, '.dockerignore'), 'utf8').split('\n');
    expect(ignore).toEqual(expect.arrayContaining(['**/node_modules', '**/dist', '.git']));
  });
});
