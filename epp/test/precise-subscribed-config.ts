import { TestKvEventPublisher } from '@kvroute/testkit';
import { parseEndpointPickerConfig } from '../src/config';
import type { Endpoint } from '../src/datastore/types';
import type { Scheduler } from '../src/scheduling/scheduler';
import type { PrecisePrefixCacheScorer } from '../src/scheduling/plugins/precise-prefix-cache-scorer';

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

/**
 * Starts `scheduler`'s plugins, adds `endpoints` to them and connects a test publisher to its precise scorer's bound
 * socket, subscribed; `close` closes both.
 */
export async function startSubscribed(scheduler: Scheduler, endpoints: readonly Endpoint[]): Promise<{ scorer: PrecisePrefixCacheScorer; pub: TestKvEventPublisher; close: () => Promise<void> }> {
  const scorer = scheduler.plugin('precise-prefix-cache-scorer') as PrecisePrefixCacheScorer;
  await scheduler.plugins.start();
  for (const endpoint of endpoints) scheduler.plugins.addEndpoint(endpoint);
  const pub = new TestKvEventPublisher();
  pub.connect(scorer.subscriber.boundEndpoint!);
  await pub.waitSubscribed();
  return {
    scorer, pub,
    close: async () => {
      pub.close();
      await scheduler.plugins.close();
    },
  };
}
