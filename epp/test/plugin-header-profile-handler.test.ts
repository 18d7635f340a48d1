/**
 * `header-profile-handler`, mirroring llm-d-router v0.10.0
 * pkg/epp/framework/plugins/scheduling/profilehandler/headerprofile/ (header_profile_handler.go Pick and
 * ProcessResults; README.md's example with kvroute's role filters, as it has no encode-filter), registered there by
 * cmd/epp/runner/runner.go registerInTreePlugins.
 */
import { parseEndpointPickerConfig } from '../src/config';
import { EMPTY_METRICS, type EndpointSnapshot } from '../src/datastore/types';
import { CycleState } from '../src/scheduling/framework';
import { buildScheduler } from '../src/scheduling/scheduler';
import { ROLE_LABEL } from '../src/scheduling/plugins/by-label';
import { SchedulingError } from '../src/scheduling/types';

const LLMD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
const config = (handler: string, profiles = ['prefill', 'decode']) => `${LLMD}plugins:
- type: prefill-filter
- type: decode-filter
${handler}schedulingProfiles:
${profiles.map((p) => `- name: ${p}\n  plugins:\n  - pluginRef: ${p}-filter\n`).join('')}`;

function pod(name: string, role: string): EndpointSnapshot {
  return { endpoint: { key: `${name}:8000`, name, namespace: 'default', address: name, port: 8000, labels: { [ROLE_LABEL]: role } }, metrics: { ...EMPTY_METRICS, updateTime: 1 }, activeRequests: 0 };
}
const pods = [pod('p', 'prefill'), pod('d', 'decode')];

describe('header-profile-handler (llm-d-router v0.10.0 profilehandler/headerprofile/header_profile_handler.go)', () => {
  const pick = (yaml: string, headers: Record<string, string>) => {
    const result = buildScheduler(parseEndpointPickerConfig(yaml)).schedule({ requestId: 'r1', model: 'm', prompt: 'p', headers, attributes: new CycleState() }, pods);
    return `${result.profile}:${result.target.endpoint.name}`;
  };

  test('the README example: the EPP-Profile header names the one profile run; without it, decode', () => {
    const yaml = config('- type: header-profile-handler\n');
    expect(pick(yaml, { 'epp-profile': 'prefill' })).toBe('prefill:p');
    expect(pick(yaml, { 'epp-profile': ' decode ' })).toBe('decode:d');
    expect(pick(yaml, {})).toBe('decode:d');
    expect(pick(yaml, { 'epp-profile': '  ' })).toBe('decode:d');
  });

  test('headerName (lower-cased) and defaultProfile', () => {
    const yaml = config('- type: header-profile-handler\n  parameters: { headerName: X-Stage, defaultProfile: prefill }\n');
    expect(pick(yaml, {})).toBe('prefill:p');
    expect(pick(yaml, { 'x-stage': 'decode' })).toBe('decode:d');
  });

  test('one profile configured runs whatever the header says', () => {
    expect(pick(config('- type: header-profile-handler\n', ['prefill']), { 'epp-profile': 'nope' })).toBe('prefill:p');
  });

  test('a header naming no profile, or a defaultProfile that is none, runs no profile and fails', () => {
    const run = (yaml: string, headers: Record<string, string>) => () =>
      buildScheduler(parseEndpointPickerConfig(yaml)).schedule({ requestId: 'r1', model: 'm', prompt: 'p', headers, attributes: new CycleState() }, pods);
    const yaml = config('- type: header-profile-handler\n');
    expect(run(yaml, { 'epp-profile': 'encode' })).toThrow(new SchedulingError('no-endpoints', 'failed to run any scheduler profile for request r1'));
    expect(run(config('- type: header-profile-handler\n  parameters: { defaultProfile: encode }\n'), {})).toThrow('failed to run any scheduler profile for request r1');
  });
});
