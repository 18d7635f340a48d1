import * as fs from 'fs';
import * as path from 'path';

/** Repository root. */
export const REPO = path.resolve(__dirname, '..', '..');
/** `../shared` beside the repository: CRDs and the Kubernetes schema (CI clones main with shared/ next to it). */
export const SHARED = path.resolve(REPO, '..', 'shared');
export const CRDS = path.join(SHARED, 'crds');
export const K8S_DEFINITIONS = path.join(CRDS, 'kubernetes-schemas', 'v1.28.0', '_definitions.json');

if (!fs.existsSync(K8S_DEFINITIONS)) {
  throw new Error(`the schema tests need ${CRDS} (the shared/ folder beside the repository)`);
}
