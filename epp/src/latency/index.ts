/** The latency-scorer's model, as a library: the fit and the per-pod TTFT model (`@kvroute/epp/latency`). */
export { DecayedRobustLinearFit, type LinearEstimate, type LinearFitOptions, type LinearPrior } from './linear-fit';
export { LatencyModel, PodLatencyModel, type LatencyModelOptions, type PodLatencyStats, type TtftPrediction } from './pod-latency-model';
/** The scrape side the model reads from, for tools that feed it `/metrics` pages themselves. */
export { applyReading, parseVllmMetrics } from '../datastore/vllm-metrics';
export { EMPTY_METRICS, type EndpointMetrics } from '../datastore/types';
export { DEFAULT_TPOT_PRIOR, PodTpotModel, TpotModel, type TpotModelOptions } from './pod-tpot-model';
