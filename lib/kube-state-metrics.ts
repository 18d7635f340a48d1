/**
 * The kube-state-metrics series kvroute's rules read. Both are STABLE gauges labelled `namespace` and `deployment`
 * (kubernetes/kube-state-metrics docs/metrics/workload/deployment-metrics.md @ 06d1481, both STABLE through the v2
 * releases).
 * kube-prometheus-stack scrapes kube-state-metrics with `honorLabels: true`, so `namespace` is the Deployment's own;
 * where a Prometheus relabels it away, the expressions that read these select nothing and fall back to the scrape
 * targets alone, never to a false alert.
 */
export const KUBE_STATE_METRICS = {
  /** `.spec.replicas` of a Deployment: the replicas asked for, after any HPA or manual scaling. */
  deploymentSpecReplicas: 'kube_deployment_spec_replicas',
  /** `.status.availableReplicas`: pods ready for `minReadySeconds`, the ones a Service routes to. */
  deploymentStatusReplicasAvailable: 'kube_deployment_status_replicas_available',
} as const;
