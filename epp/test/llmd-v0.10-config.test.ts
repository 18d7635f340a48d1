/**
 * llm-d-router v0.10.0's EndpointPickerConfig (apix/config/v1alpha1, pkg/epp/config/loader @ v0.10.0): what its
 * loader accepts, kvroute's loader accepts too, with the same meaning where kvroute has one.
 */
import {
  ConfigError,
  endpointPickerConfigNotes,
  parseEndpointPickerConfig,
  renderEndpointPickerConfig,
} from '../src/config';

const LLMD = 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n';
const GIE = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n';

function configErrorOf(load: () => unknown): string {
  try {
    load();
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('apiVersion (llm-d-router v0.10.0 apix/config/v1alpha1/zz_generated.register.go, pkg/epp/config/loader/configloader.go)', () => {
  test('llm-d.ai/v1alpha1 loads, keeps its group when rendered, and carries no deprecation note', () => {
    const config = parseEndpointPickerConfig(`${LLMD}plugins:\n- type: queue-scorer\n`);
    expect(config.apiVersion).toBe('llm-d.ai/v1alpha1');
    expect(endpointPickerConfigNotes(config)).toEqual([]);
    const rendered = renderEndpointPickerConfig(config);
    expect(rendered).toMatch(/^apiVersion: llm-d.ai\/v1alpha1$/m);
    expect(parseEndpointPickerConfig(rendered)).toEqual(config);
  });

  test('GIE\'s inference.networking.x-k8s.io/v1alpha1 still loads, with upstream\'s DEPRECATION note naming the replacement', () => {
    const config = parseEndpointPickerConfig(`${GIE}plugins:\n- type: queue-scorer\n`);
    expect(config.apiVersion).toBe('inference.networking.x-k8s.io/v1alpha1');
    expect(endpointPickerConfigNotes(config)).toEqual([
      'DEPRECATION: apiVersion inference.networking.x-k8s.io/v1alpha1/EndpointPickerConfig is deprecated (llm-d-router v0.10.0); replacement: llm-d.ai/v1alpha1/EndpointPickerConfig',
    ]);
  });

  test.each([
    ['another group', 'apiVersion: llm-d.ai/v1beta1\n', '"llm-d.ai/v1beta1"'],
    ['none', '', 'nothing'],
  ])('a wrong apiVersion (%s) names both allowed values', (_case, line, got) => {
    expect(configErrorOf(() => parseEndpointPickerConfig(`${line}kind: EndpointPickerConfig\nplugins: []\n`)))
      .toBe(`apiVersion: must be "llm-d.ai/v1alpha1" or "inference.networking.x-k8s.io/v1alpha1", got ${got}`);
  });
});
