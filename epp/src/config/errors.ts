/**
 * The one error type the EndpointPickerConfig loader throws. `path` names the offending field the way a user would
 * write it (`plugins[2].parameters.hashBlockSize`), so a bad ConfigMap can be fixed without reading the loader.
 */
export class ConfigError extends Error {
  constructor(
    /** Field path such as `schedulingProfiles[0].plugins[1].weight`; '' for problems with the whole document. */
    readonly path: string,
    /** What is wrong and what would be accepted. */
    readonly problem: string,
  ) {
    super(path === '' ? problem : `${path}: ${problem}`);
    this.name = 'ConfigError';
  }
}

/** Renders a received value for an error message: strings quoted, containers named rather than dumped. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  return String(value);
}
