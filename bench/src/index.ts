/**
 * Public API of `@kvroute/bench` for other workspaces' tests: the local stack (simulated pods, the EPP and the gateway
 * as processes on loopback), as `npm start` and the demo run it.
 */
export {
  DEFAULT_SIM,
  GATEWAY_ENVOY_FLAGS,
  httpGet,
  startStack,
  type RoutingPolicy,
  type SimulatorSettings,
  type Stack,
  type StackOptions,
} from './stack';
export { HA_OUTLIER_DETECTION } from './demo-ha';
export type { Started } from './processes';
