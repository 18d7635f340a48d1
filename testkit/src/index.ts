/**
 * Test-only parts shared by the workspaces (a devDependency; nothing here ships in an image): waiting, deterministic
 * bytes, loopback fakes of vLLM's `/metrics` and of the Kubernetes API server, and the strict Envoy proto-JSON checker.
 */
export { waitFor, turns, sleep, freePort, DEFAULT_WAIT_LIMIT_MS, E2E_TEST_TIMEOUT_MS, INTEGRATION_TEST_TIMEOUT_MS, type WaitOptions } from './wait';
export { pseudoRandom, seededRandom } from './bytes';
export { FakeVllmServer, renderVllmMetrics, type FakeEngine, type FakeVllmMode, type VllmPageOptions } from './fake-vllm';
export {
  FakeKubeApiServer,
  GIE_INFERENCE_API_GROUP,
  LLMD_INFERENCE_API_GROUP,
  TEST_TOKEN,
  fakeModelRewrite,
  fakeObjective,
  fakePod,
  fakePoolV1,
  fakePoolV1alpha2,
  parseLabelSelector,
  type FakePodOptions,
  type RequestRecord,
} from './fake-kube-apiserver';
export {
  checkEnvoyConfig,
  checkProtoJson,
  envoyRuleViolations,
  lowerCamel,
  validateRules,
  type ProtoJsonOptions,
} from './envoy-proto-json';
export { TestKvEventPublisher } from './kv-event-publisher';
export { stepWallClock, type SteppedWallClock } from './wall-clock';
export { templateTokenizerJson, writeTemplateTokenizer, type TemplatePiece } from './tokenizer-fixture';
