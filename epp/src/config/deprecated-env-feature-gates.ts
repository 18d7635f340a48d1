import type { EndpointPickerConfig, FeatureGate } from './types';

/**
 * GIE v1.5.0's environment variables that turn a feature gate on (`applyDeprecatedEnvFeatureGate`,
 * cmd/epp/runner/runner.go): only `ENABLE_EXPERIMENTAL_FLOW_CONTROL_LAYER`, the Flow Control layer's, which GIE's
 * v1.0-v1.4 manifests set on the EPP's container.
 */
export const DEPRECATED_ENV_FEATURE_GATES = [
  { env: 'ENABLE_EXPERIMENTAL_FLOW_CONTROL_LAYER', feature: 'Flow Control layer', gate: 'flowControl' },
] as const satisfies readonly { env: string; feature: string; gate: FeatureGate }[];
export type DeprecatedFeatureGateEnv = Partial<Record<(typeof DEPRECATED_ENV_FEATURE_GATES)[number]['env'], string>>;

/** Go's strconv.ParseBool: 1, t, T, TRUE, true, True; 0, f, F, FALSE, false, False; anything else undefined. */
export function parseGoBool(raw: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(raw)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(raw)) return false;
  return undefined;
}

/**
 * The config with the gate of each variable set to true appended to `featureGates`, as GIE does before it loads the
 * plugins, and GIE's log lines: a set variable is deprecated; one that does not parse as a bool is false.
 */
export function applyDeprecatedEnvFeatureGates(config: EndpointPickerConfig, env: DeprecatedFeatureGateEnv): { config: EndpointPickerConfig; notes: string[] } {
  const notes: string[] = [];
  const gates: string[] = [];
  for (const { env: name, feature, gate } of DEPRECATED_ENV_FEATURE_GATES) {
    const raw = env[name];
    if (raw === undefined) continue;
    notes.push(`Enabling the experimental ${feature} using environment variables is deprecated and will be removed in next version (${name}=${raw}; name ${gate} in the config's featureGates instead)`);
    const on = parseGoBool(raw);
    if (on === undefined) notes.push(`Failed to parse environment variable as bool, using default value: ${name}=${JSON.stringify(raw)} leaves ${gate} as the config says`);
    if (on === true) gates.push(gate);
  }
  if (gates.length === 0) return { config, notes };
  return { config: { ...config, featureGates: [...(config.featureGates ?? []), ...gates] }, notes };
}
