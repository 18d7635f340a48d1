import { execFileSync, spawnSync } from 'child_process';
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

/**
 * The images as the Dockerfile assembles them, emulated without Docker: each stage's filesystem is a folder, the deps
 * stage's `RUN npm ci …` runs as written (against the registry, or npm's cache when it holds the packages), the
 * `COPY --from` and `WORKDIR` lines of the deps and runtime stages are followed as Docker follows them, and the build
 * stage is this checkout's build (its /manifests and /out as its loop writes them). The entry point then runs from
 * the runtime stage's WORKDIR as the image's user where this process may switch to it, with NODE_ENV=production.
 * A missing runtime dependency (a package npm nested under a workspace that the runtime stage did not copy) fails here.
 */
describe('the images, assembled as the Dockerfile says (no Docker engine)', () => {
  const dockerfile = fs.readFileSync(path.join(REPO, 'Dockerfile'), 'utf8');
  const root = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { workspaces: string[] };
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const stageNamed = (name: string): string => stages.find((s) => s.split('\n')[0]!.endsWith(` AS ${name}`))!;
  /** Dockerfile lines of one stage, continuation lines joined, comments dropped. */
  const instructions = (stage: string): string[] => stage.replace(/\\\n/g, ' ').split('\n').slice(1)
    .map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('#'));

  /** The workspaces `tsc -b <pkg>/tsconfig.build.json` builds: the package and its project references. */
  function builtWorkspaces(pkg: string): string[] {
    const seen = new Set<string>();
    const walk = (ws: string): void => {
      if (seen.has(ws)) return;
      seen.add(ws);
      const config = JSON.parse(fs.readFileSync(path.join(REPO, ws, 'tsconfig.build.json'), 'utf8')) as { references?: { path: string }[] };
      for (const ref of config.references ?? []) walk(path.relative(REPO, path.resolve(REPO, ws, ref.path)).split(path.sep)[0]!);
    };
    walk(pkg);
    return [...seen];
  }

  /** Follows a stage's WORKDIR, COPY --from and RUN lines inside `fsRoot`; other stages' filesystems by name. */
  function runStage(stage: string, fsRoot: string, others: Record<string, string>, env: Record<string, string>): string {
    const expand = (s: string): string => s.replace(/\$\{(\w+)\}/g, (_, v: string) => env[v] ?? '');
    let workdir = '/';
    for (const line of instructions(stage)) {
      const [op, ...rest] = line.split(/\s+/);
      if (op === 'WORKDIR') {
        workdir = path.posix.resolve(workdir, expand(rest[0]!));
        fs.mkdirSync(path.join(fsRoot, workdir), { recursive: true });
      } else if (op === 'COPY') {
        const from = /^--from=(\w+)$/.exec(rest[0]!)?.[1];
        if (!from) throw new Error(`only COPY --from is emulated: ${line}`);
        // Docker copies a folder's contents into the destination, which it creates.
        fs.cpSync(path.join(others[from]!, expand(rest[1]!)), path.join(fsRoot, path.posix.resolve(workdir, expand(rest[2]!))),
          { recursive: true, verbatimSymlinks: true });
      } else if (op === 'RUN') {
        execFileSync('sh', ['-c', line.slice(4)], {
          cwd: path.join(fsRoot, workdir),
          env: { ...process.env, ...env, npm_config_prefer_offline: 'true' },
          stdio: ['ignore', 'ignore', 'inherit'],
        });
      }
    }
    return path.join(fsRoot, workdir);
  }

  const folders: string[] = [];
  afterAll(() => {
    for (const f of folders) fs.rmSync(f, { recursive: true, force: true });
  });

  /** The runtime stage's working folder, built from the deps stage and this checkout's build. */
  function assemble(pkg: string): { workdir: string; entrypoint: string[] } {
    const tmp = fs.mkdtempSync(path.join('/tmp', `kvroute-image-${pkg}-`));
    // Readable by the image's user, which runs the entry point from here.
    fs.chmodSync(tmp, 0o755);
    folders.push(tmp);
    const build = path.join(tmp, 'build');
    for (const ws of root.workspaces) {
      fs.mkdirSync(path.join(build, 'manifests', ws), { recursive: true });
      fs.copyFileSync(path.join(REPO, ws, 'package.json'), path.join(build, 'manifests', ws, 'package.json'));
    }
    for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(REPO, f), path.join(build, 'manifests', f));
    for (const ws of builtWorkspaces(pkg)) {
      fs.mkdirSync(path.join(build, 'out', ws), { recursive: true });
      fs.copyFileSync(path.join(REPO, ws, 'package.json'), path.join(build, 'out', ws, 'package.json'));
      fs.cpSync(path.join(REPO, ws, 'dist'), path.join(build, 'out', ws, 'dist'), { recursive: true });
    }
    const env = { PACKAGE: pkg };
    const deps = path.join(tmp, 'deps');
    runStage(stageNamed('deps'), deps, { build }, env);
    const runtime = stages[stages.length - 1]!;
    const workdir = runStage(runtime, path.join(tmp, 'runtime'), { build, deps }, env);
    return { workdir, entrypoint: JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(runtime)![1]!) as string[] };
  }

  /** Runs `args` with node from the image's working folder, as uid/gid 65532 (the image's USER) when this is root. */
  function run(workdir: string, args: string[]): ReturnType<typeof spawnSync> {
    const user = /^USER (\d+):(\d+)$/m.exec(dockerfile)!;
    const asUser = process.getuid?.() === 0 && spawnSync('setpriv', ['--version']).status === 0
      ? ['setpriv', '--reuid', user[1]!, '--regid', user[2]!, '--clear-groups'] : [];
    const [cmd, ...rest] = [...asUser, process.execPath, ...args];
    return spawnSync(cmd!, rest, { cwd: workdir, env: { PATH: process.env.PATH, HOME: '/', NODE_ENV: 'production' }, encoding: 'utf8', timeout: 60_000 });
  }

  test.each(['epp', 'sim', 'gateway'])('%s: the entry point loads every module it needs and answers --help', (pkg) => {
    const { workdir, entrypoint } = assemble(pkg);
    expect(entrypoint[0]).toBe('node');
    const help = run(workdir, [...entrypoint.slice(1), '--help']);
    expect(help.stderr).not.toMatch(/Cannot find module/);
    expect({ status: help.status, usage: /usage/i.test(String(help.stdout)) }).toEqual({ status: 0, usage: true });
    if (pkg === 'epp') {
      // Precise scoring loads the tokenizer only once a model is known: load the bundled one and encode, as it does.
      const tokenizer = run(workdir, ['-e', `const t = require('@kvroute/tokenizer');
        t.ModelTokenizer.load(t.resolveTokenizerFiles({ model: 'Qwen/Qwen3-0.6B', hubCache: '/nonexistent' }))
          .encode('hello world').then((ids) => console.log(ids.length));`]);
      expect({ stderr: tokenizer.stderr, stdout: String(tokenizer.stdout).trim() }).toEqual({ stderr: '', stdout: '2' });
    }
  }, 600_000);
});
