/**
 * How the EPP's Node.js process is started where it is deployed: the cdk8s app puts these flags on the container's
 * command line (`EndpointPicker`'s `nodeArgs` default) and the EPP benchmarks start their EPPs (and the floor server)
 * with them unless told otherwise, so what is measured is what runs.
 *
 * `--initial-old-space-size=128`: V8 starts the old generation at 128 MiB. The EPP's live heap (the Envoy protos'
 * reflection objects, the prefix index) is ~32 MB and more; with V8's default start the old generation's limit sat just
 * above it, and under load the EPP ran a mark-compact after every megabyte or two promoted (epp/README.md, "Why the
 * floor's cost swings"). `NODE_OPTIONS` does not accept this flag, hence the command line. The flag is process-wide:
 * each scrape worker's isolate starts its old generation at 128 MiB as well (a probe worker promoting garbage grew to
 * ~100 MB before collecting, ~25 MB without), which the default single worker fits within the 1 GiB limit.
 */
export const EPP_NODE_ARGS: readonly string[] = Object.freeze(['--initial-old-space-size=128']);
