/**
 * `npm run bench:slot-wait -w epp`: the CPU cost of one latency-model slot-wait prediction on a full pod (the
 * latency-scorer runs it per candidate per request for session requests), per `--max-num-seqs` and in-flight count,
 * in ns per call; the median of three repetitions. Session 35 measured the walk over the pod's in-flight starts this
 * replaced against the binary search (epp/README.md, "Waiting for a sequence slot").
 */
import * as os from 'os';
import { EMPTY_METRICS } from '../src/datastore/types';
import { PodLatencyModel } from '../src/latency/pod-latency-model';

const OPTIONS = { priorSecondsPerToken: 0.0002, priorOverheadSeconds: 0.02, priorWeight: 8, halfLifeMs: 60_000, pendingTimeoutMs: 30_000 };

function nsPerCall(slots: number, inFlight: number, calls: number): number {
  const model = new PodLatencyModel({ ...OPTIONS, maxNumSeqs: slots });
  model.ingest({ ...EMPTY_METRICS, updateTime: 1, inferenceCount: 0, inferenceSecondsSum: 0 }, 1);
  model.ingest({ ...EMPTY_METRICS, updateTime: 2, inferenceCount: 64, inferenceSecondsSum: 64 * 4 }, 2);
  // Staggered starts over the last 8 s, and the requests beyond the slots predicted to start later.
  for (let i = 0; i < inFlight; i++) model.started(`r${i}`, 10_000 - 8_000 + (i * 8_000) / slots);
  const metrics = { ...EMPTY_METRICS, runningQueueSize: slots, waitingQueueSize: Math.max(0, inFlight - slots) };
  let sink = 0;
  const t0 = process.hrtime.bigint();
  // Every rank among the slots in turn (the in-flight count the scorer passes varies with the pick).
  for (let c = 0; c < calls; c++) sink += model.slotWaitSeconds(metrics, inFlight - (c % slots), 10_000);
  const ns = Number(process.hrtime.bigint() - t0) / calls;
  if (!Number.isFinite(sink)) throw new Error('no prediction');
  return ns;
}

function main(): void {
  const calls = Number(process.env.SLOT_WAIT_CALLS ?? 200_000);
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, node ${process.version}, load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (const slots of [16, 256, 1024]) {
    for (const inFlight of [slots, Math.round(slots * 1.5)]) {
      nsPerCall(slots, inFlight, calls / 10); // warm-up
      const runs = [0, 1, 2].map(() => nsPerCall(slots, inFlight, calls)).sort((a, b) => a - b);
      console.log(`max-num-seqs ${slots}, ${inFlight} in flight: ${runs[1]!.toFixed(0)} ns per slot-wait prediction (× 256 candidates: ${((runs[1]! * 256) / 1000).toFixed(1)} µs)`);
    }
  }
}

main();
