import * as path from 'path';

/** Repository root. */
export const REPO = path.resolve(__dirname, '..', '..');
/** The CRDs and the Kubernetes 1.28 schema the app imports and validates against (see schemas/README.md). */
export const CRDS = path.join(REPO, 'schemas');
export const K8S_DEFINITIONS = path.join(CRDS, 'kubernetes-schemas', 'v1.28.0', '_definitions.json');
