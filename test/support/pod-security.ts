/**
 * The Kubernetes Pod Security Standards' "restricted" profile as of Kubernetes 1.28, checked on a synthesized pod
 * template. One function per control, each mirroring the check of the same ID in the admission plugin that enforces
 * the profile, k8s.io/pod-security-admission `policy/check_*.go` @ v0.28.9 (the release-1.28 branch), which the page
 * https://kubernetes.io/docs/concepts/security/pod-security-standards/ (v1.28) documents. "restricted" is every
 * baseline control plus the restricted ones, where a restricted check overrides its baseline counterpart
 * (`OverrideCheckIDs`: restrictedVolumes over hostPathVolumes, capabilities_restricted over capabilities_baseline,
 * seccompProfile_restricted over seccompProfile_baseline).
 *
 * Every check visits init, regular and ephemeral containers (`visitContainers`), and each result names the check ID, so
 * a test can compare a pod's failures with the exceptions its construct documents.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = Record<string, any>;

/** One failed control: the check ID upstream uses and what failed. */
export interface Violation {
  readonly check: string;
  readonly detail: string;
  /** The containers at fault; empty when the pod spec itself is. */
  readonly containers: readonly string[];
}

function containers(spec: Json): Json[] {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])];
}

const isWindows = (spec: Json) => spec.os?.name === 'windows';

// ---- baseline controls (part of restricted) ----

/** check_windowsHostProcess.go: hostProcess must be unset or false, pod and containers. */
function windowsHostProcess(spec: Json): Violation[] {
  const bad = containers(spec).filter((c) => c.securityContext?.windowsOptions?.hostProcess === true).map((c) => c.name);
  const pod = spec.securityContext?.windowsOptions?.hostProcess === true;
  return pod || bad.length ? [{ check: 'windowsHostProcess', detail: 'windowsOptions.hostProcess=true', containers: bad }] : [];
}

/** check_hostNamespaces.go: hostNetwork, hostPID, hostIPC unset or false. */
function hostNamespaces(spec: Json): Violation[] {
  const set = ['hostNetwork', 'hostPID', 'hostIPC'].filter((f) => spec[f] === true);
  return set.length ? [{ check: 'hostNamespaces', detail: `${set.join(', ')}=true`, containers: [] }] : [];
}

/** check_privileged.go: securityContext.privileged unset or false. */
function privileged(spec: Json): Violation[] {
  const bad = containers(spec).filter((c) => c.securityContext?.privileged === true).map((c) => c.name);
  return bad.length ? [{ check: 'privileged', detail: 'privileged=true', containers: bad }] : [];
}

/** check_hostPorts.go: no hostPort other than 0. */
function hostPorts(spec: Json): Violation[] {
  const bad = containers(spec).filter((c) => (c.ports ?? []).some((p: Json) => p.hostPort !== undefined && p.hostPort !== 0)).map((c) => c.name);
  return bad.length ? [{ check: 'hostPorts', detail: 'hostPort set', containers: bad }] : [];
}

/** check_appArmorProfile.go (1.28: annotations only): runtime/default, localhost/*, or unset. */
function appArmorProfile(spec: Json, annotations: Record<string, string>): Violation[] {
  const bad = Object.entries(annotations)
    .filter(([k, v]) => k.startsWith('container.apparmor.security.beta.kubernetes.io/') && v !== '' && v !== 'runtime/default' && !v.startsWith('localhost/'))
    .map(([k]) => k.slice('container.apparmor.security.beta.kubernetes.io/'.length));
  void spec;
  return bad.length ? [{ check: 'appArmorProfile', detail: 'forbidden AppArmor profile', containers: bad }] : [];
}

/** check_seLinuxOptions.go: type empty or container_t/container_init_t/container_kvm_t; no user, no role. */
function seLinuxOptions(spec: Json): Violation[] {
  const types = new Set(['', 'container_t', 'container_init_t', 'container_kvm_t']);
  const bad = (o: Json | undefined) => o !== undefined && (!types.has(o.type ?? '') || (o.user ?? '') !== '' || (o.role ?? '') !== '');
  const badContainers = containers(spec).filter((c) => bad(c.securityContext?.seLinuxOptions)).map((c) => c.name);
  return bad(spec.securityContext?.seLinuxOptions) || badContainers.length
    ? [{ check: 'seLinuxOptions', detail: 'forbidden seLinuxOptions', containers: badContainers }] : [];
}

/** check_procMount.go: procMount unset or Default. */
function procMount(spec: Json): Violation[] {
  const bad = containers(spec).filter((c) => c.securityContext?.procMount !== undefined && c.securityContext.procMount !== 'Default').map((c) => c.name);
  return bad.length ? [{ check: 'procMount', detail: 'procMount != Default', containers: bad }] : [];
}

/** check_sysctls.go, the 1.27+ safe set. */
function sysctls(spec: Json): Violation[] {
  const safe = new Set(['kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.tcp_syncookies',
    'net.ipv4.ping_group_range', 'net.ipv4.ip_unprivileged_port_start', 'net.ipv4.ip_local_reserved_ports']);
  const bad = (spec.securityContext?.sysctls ?? []).map((s: Json) => s.name).filter((n: string) => !safe.has(n));
  return bad.length ? [{ check: 'sysctls', detail: `forbidden sysctls ${bad.join(', ')}`, containers: [] }] : [];
}

// ---- restricted controls ----

/** check_restrictedVolumes.go (overrides hostPathVolumes): only these inline volume sources. */
function restrictedVolumes(spec: Json): Violation[] {
  const allowed = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
  const bad = (spec.volumes ?? []).filter((v: Json) => !allowed.some((k) => v[k] !== undefined && v[k] !== null)).map((v: Json) => v.name);
  return bad.length ? [{ check: 'restrictedVolumes', detail: `restricted volume types in ${bad.join(', ')}`, containers: [] }] : [];
}

/** check_allowPrivilegeEscalation.go: every container sets allowPrivilegeEscalation=false (Windows pods exempt). */
function allowPrivilegeEscalation(spec: Json): Violation[] {
  if (isWindows(spec)) return [];
  const bad = containers(spec).filter((c) => c.securityContext?.allowPrivilegeEscalation !== false).map((c) => c.name);
  return bad.length ? [{ check: 'allowPrivilegeEscalation', detail: 'allowPrivilegeEscalation != false', containers: bad }] : [];
}

/** check_runAsNonRoot.go: true at pod level (containers may then leave it unset) or on every container; never false. */
function runAsNonRoot(spec: Json): Violation[] {
  const pod = spec.securityContext?.runAsNonRoot;
  const bad = containers(spec).filter((c) => {
    const own = c.securityContext?.runAsNonRoot;
    return own === false || (own === undefined && pod !== true);
  }).map((c) => c.name);
  return pod === false || bad.length ? [{ check: 'runAsNonRoot', detail: 'runAsNonRoot != true', containers: bad }] : [];
}

/** check_runAsUser.go: runAsUser is never 0. */
function runAsUser(spec: Json): Violation[] {
  const bad = containers(spec).filter((c) => c.securityContext?.runAsUser === 0).map((c) => c.name);
  return spec.securityContext?.runAsUser === 0 || bad.length ? [{ check: 'runAsUser', detail: 'runAsUser=0', containers: bad }] : [];
}

/** check_seccompProfile_restricted.go: RuntimeDefault or Localhost, at pod level or on every container (Windows exempt). */
function seccompProfile(spec: Json): Violation[] {
  if (isWindows(spec)) return [];
  const valid = (p: Json | undefined) => p?.type === 'RuntimeDefault' || p?.type === 'Localhost';
  const podProfile = spec.securityContext?.seccompProfile;
  const podBad = podProfile !== undefined && !valid(podProfile);
  const bad = containers(spec).filter((c) => {
    const own = c.securityContext?.seccompProfile;
    return own !== undefined ? !valid(own) : !valid(podProfile);
  }).map((c) => c.name);
  return podBad || bad.length ? [{ check: 'seccompProfile_restricted', detail: 'seccompProfile not RuntimeDefault or Localhost', containers: bad }] : [];
}

/** check_capabilities_restricted.go: drop includes ALL; add is empty or NET_BIND_SERVICE only (Windows exempt). */
function capabilities(spec: Json): Violation[] {
  if (isWindows(spec)) return [];
  const bad = containers(spec).filter((c) => {
    const caps = c.securityContext?.capabilities;
    return !(caps?.drop ?? []).includes('ALL') || (caps?.add ?? []).some((a: string) => a !== 'NET_BIND_SERVICE');
  }).map((c) => c.name);
  return bad.length ? [{ check: 'capabilities_restricted', detail: 'drop ALL, add at most NET_BIND_SERVICE', containers: bad }] : [];
}

const CHECKS = [
  windowsHostProcess, hostNamespaces, privileged, hostPorts, seLinuxOptions, procMount, sysctls,
  restrictedVolumes, allowPrivilegeEscalation, runAsNonRoot, runAsUser, seccompProfile, capabilities,
];

/** Every check the "restricted" profile runs, by upstream ID (for tests that each one can fail). */
export const RESTRICTED_CHECK_IDS = [
  'windowsHostProcess', 'hostNamespaces', 'privileged', 'hostPorts', 'appArmorProfile', 'seLinuxOptions', 'procMount', 'sysctls',
  'restrictedVolumes', 'allowPrivilegeEscalation', 'runAsNonRoot', 'runAsUser', 'seccompProfile_restricted',
  'capabilities_restricted',
] as const;

// ---- the baseline counterparts the restricted checks override ----

/** check_hostPathVolumes.go: no hostPath volume. */
function hostPathVolumes(spec: Json): Violation[] {
  const bad = (spec.volumes ?? []).filter((v: Json) => v.hostPath !== undefined).map((v: Json) => v.name);
  return bad.length ? [{ check: 'hostPathVolumes', detail: `hostPath volumes ${bad.join(', ')}`, containers: [] }] : [];
}

/** check_capabilities_baseline.go: capabilities.add only from the default set container runtimes grant. */
const BASELINE_CAPABILITIES = new Set(['AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT']);
function capabilitiesBaseline(spec: Json): Violation[] {
  const bad = containers(spec).filter((c) => (c.securityContext?.capabilities?.add ?? []).some((a: string) => !BASELINE_CAPABILITIES.has(a))).map((c) => c.name);
  return bad.length ? [{ check: 'capabilities_baseline', detail: 'capabilities.add beyond the default set', containers: bad }] : [];
}

/** check_seccompProfile_baseline.go: seccompProfile.type is not Unconfined, pod or container (unset is allowed). */
function seccompProfileBaseline(spec: Json): Violation[] {
  const bad = containers(spec).filter((c) => c.securityContext?.seccompProfile?.type === 'Unconfined').map((c) => c.name);
  const pod = spec.securityContext?.seccompProfile?.type === 'Unconfined';
  return pod || bad.length ? [{ check: 'seccompProfile_baseline', detail: 'seccompProfile.type=Unconfined', containers: bad }] : [];
}

const BASELINE_CHECKS = [windowsHostProcess, hostNamespaces, privileged, hostPorts, seLinuxOptions, procMount, sysctls, hostPathVolumes, capabilitiesBaseline, seccompProfileBaseline];

/** Every check the "baseline" profile runs, by upstream ID. */
export const BASELINE_CHECK_IDS = [
  'windowsHostProcess', 'hostNamespaces', 'privileged', 'hostPorts', 'appArmorProfile', 'seLinuxOptions', 'procMount', 'sysctls',
  'hostPathVolumes', 'capabilities_baseline', 'seccompProfile_baseline',
] as const;

/** What the "baseline" profile (Kubernetes 1.28) refuses in a pod template: empty when it would be admitted. */
export function baselineViolations(template: { metadata?: Json; spec: Json }): Violation[] {
  const annotations = (template.metadata?.annotations ?? {}) as Record<string, string>;
  return [...BASELINE_CHECKS.flatMap((check) => check(template.spec)), ...appArmorProfile(template.spec, annotations)];
}

/** What the "restricted" profile (Kubernetes 1.28) refuses in a pod template: empty when it would be admitted. */
export function restrictedViolations(template: { metadata?: Json; spec: Json }): Violation[] {
  const annotations = (template.metadata?.annotations ?? {}) as Record<string, string>;
  return [...CHECKS.flatMap((check) => check(template.spec)), ...appArmorProfile(template.spec, annotations)];
}
