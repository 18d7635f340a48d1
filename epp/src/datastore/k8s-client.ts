import { pathToFileURL } from 'node:url';
import * as vm from 'node:vm';
import type * as K8s from '@kubernetes/client-node' with { 'resolution-mode': 'import' };

/** The `@kubernetes/client-node` module namespace (an ES module since 1.0). */
export type KubernetesClientModule = typeof K8s;

let loading: Promise<KubernetesClientModule> | undefined;

/**
 * Loads `@kubernetes/client-node`, which ships only as an ES module, from this CommonJS build.
 *
 * A plain `import()` would be compiled by tsc (module: commonjs) into `require()`, which cannot load it on the
 * Node versions this project supports, so the import expression is built at run time where tsc cannot see it.
 * Under jest that expression runs inside jest's vm context, which has no dynamic-import hook unless jest runs with
 * --experimental-vm-modules; there it is compiled in the main context with Node's own loader instead. Either way
 * the specifier is the resolved file, so resolution does not depend on the working directory.
 */
export function loadKubernetesClient(): Promise<KubernetesClientModule> {
  loading ??= importEsm<KubernetesClientModule>(pathToFileURL(require.resolve('@kubernetes/client-node')).href).catch(
    (err: unknown) => {
      loading = undefined;
      throw err;
    },
  );
  return loading;
}

const importInThisRealm = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<unknown>;

export async function importEsm<T>(specifier: string): Promise<T> {
  try {
    return (await importInThisRealm(specifier)) as T;
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (code !== 'ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING' && code !== 'ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING_FLAG') throw err;
    const importInMainRealm = vm.runInThisContext('(specifier) => import(specifier)', {
      importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
    }) as (s: string) => Promise<unknown>;
    return (await importInMainRealm(specifier)) as T;
  }
}
