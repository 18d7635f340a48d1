import { parseEndpointPickerConfig } from '../src/config';

const HEADER = 'apiVersion: inference.networking.x-k8s.io/v1alpha1\nkind: EndpointPickerConfig\n';

/**
 * A config of the precise scorer subscribed on a loopback port for `kv@` topics (central mode: the tests' publishers
 * connect to it) and a picker; `indexer` and `parameters` are further lines of its indexerConfig and parameters.
 */
export const subscribedConfig = (indexer: string, parameters = '') => parseEndpointPickerConfig(`${HEADER}plugins:
  - type: precise-prefix-cache-scorer
    parameters:
      kvEventsConfig: { discoverPods: false, zmqEndpoint: "tcp://127.0.0.1:0", topicFilter: "kv@" }
      indexerConfig:
        tokenProcessorConfig: { blockSize: 16 }${indexer}${parameters}
  - type: max-score-picker
`);
