/**
 * The clock every duration and deadline of the gateway is measured on: monotonic milliseconds (`performance.now()`),
 * as Envoy measures its timers and outlier-detection ejections on `TimeSource::monotonicTime()` (envoy/common/time.h,
 * `eject(time_source_.monotonicTime())` in source/common/upstream/outlier_detection_impl.cc). `Date.now()` is wall
 * time: an NTP correction, a VM resume or a container clock jump steps it, and a timeout measured on it fires at once
 * or not for the length of the step. Wall time stays only where a wall timestamp is what is shown (the `date` header,
 * `startedAt` in the stats).
 */
export const monotonicMs = (): number => performance.now();
