/** Loopback fakes for tests and local runs: a vLLM `/metrics` server and a Kubernetes API server. Not used by the EPP. */
export { FakeVllmServer, renderVllmMetrics, type FakeEngine, type FakeVllmMode, type VllmPageOptions } from './fake-vllm';
export {
  FakeKubeApiServer,
  TEST_TOKEN,
  fakePod,
  fakePoolV1,
  fakePoolV1alpha2,
  parseLabelSelector,
  type FakePodOptions,
  type RequestRecord,
} from './fake-kube-apiserver';
