/**
 * The kube-state-metrics series kvroute's rules read. Both are STABLE gauges labelled `namespace` and `deployment`
 * (kubernetes/kube-state-metrics docs/metrics/workload/deployment-metrics.md @ 06d1481, both STABLE through the v2
 * releases).
 * kube-prometheus-stack scrapes kube-state-metrics with `honorLabels: true`, so `namespace` is the Deployment's own.
 * Scraped without it, the target's namespace wins and the Deployment's moves to `exported_namespace`: the rules select
 * `exported_namespace=""` as well, so they then read nothing (unless kube-state-metrics runs in the stack's namespace
 * and honours labels) and fall back to the scrape targets alone, never to another namespace's Deployment.
 */
export const KUBE_STATE_METRICS = {
  /** `.spec.replicas` of a Deployment: the replicas asked for, after any HPA or manual scaling. */
  deploymentSpecReplicas: 'kube_deployment_spec_replicas',
  /** `.status.availableReplicas`: pods ready for `minReadySeconds`, the ones a Service routes to. */
  deploymentStatusReplicasAvailable: 'kube_deployment_status_replicas_available',
} as const;
