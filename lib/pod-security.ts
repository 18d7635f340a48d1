/**
 * Pod hardening shared by kvroute's workloads: the Kubernetes Pod Security Standards' "restricted" profile where the
 * image allows it, and a typed record of each place it does not.
 * @see https://kubernetes.io/docs/concepts/security/pod-security-standards/ (v1.28)
 */

/**
 * A hardening control one container of a pod does not meet, and why. Constructs expose their list
 * (`podSecurityExceptions`); the tests check a pod against every control and require its failures to be exactly these.
 */
export interface PodSecurityException {
  /**
   * The control: a Pod Security "restricted" check by its ID in `k8s.io/pod-security-admission` (`runAsNonRoot`,
   * `capabilities_restricted`, …), or `readOnlyRootFilesystem`, which kvroute asks of every container beyond the profile.
   */
  readonly control: 'runAsNonRoot' | 'readOnlyRootFilesystem';
  /** The container that does not meet it. */
  readonly container: string;
  /** Why, in one sentence, for the README and reviewers. */
  readonly reason: string;
}

/** The pod-level seccomp setting every kvroute pod carries (the "restricted" profile's Seccomp control). */
export const RUNTIME_DEFAULT_SECCOMP = { type: 'RuntimeDefault' } as const;

/**
 * The container-level settings every kvroute container carries, whatever its image: no privilege escalation (no
 * set-user-ID gains) and no Linux capabilities at all (none of the images binds a port below 1024 or needs one).
 */
export function hardenedContainerSecurityContext(): { allowPrivilegeEscalation: false; capabilities: { drop: string[] } } {
  return { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } };
}
