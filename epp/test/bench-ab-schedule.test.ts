import * as grpc from '@grpc/grpc-js';
import { headersResponse, streamedBodyChunk, type ProcessingRequest } from '@kvroute/protocol/envoy';
import { drivePaired, pairedSideOrder, workload, type PairedStep } from '../bench/extproc-client';
import { eppFirst } from '../bench/round-stats';
import { extProcServiceDefinition } from '../src/extproc/server';

// bench:ab's paired driver (bench/extproc-client.ts drivePaired), held to the schedule the EPP benchmark's paired rounds
// keep (bench/paired-rounds.ts, round-stats.ts eppFirst): which side goes first alternates round by round, and every
// measured phase is preceded by unmeasured load on the same side. Before, A went first in every round and only the
// start was warmed, and an A/A run of one build read B ÷ A 1.04-2.09. Real gRPC on loopback against two ext_proc
// servers answering as the benchmark's floor does; what is checked is the order of steps and of the streams each
// server saw, never how long anything took.

/** An ext_proc server answering like bench/floor-server.ts (body held to the last chunk, then streamed back), which logs each stream's arrival. */
async function floorLike(name: string, arrivals: string[]): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server();
  server.addService(extProcServiceDefinition({ leanRequests: true }), {
    Process: (call: grpc.ServerDuplexStream<ProcessingRequest, unknown>) => {
      arrivals.push(name);
      const held: Buffer[] = [];
      call.on('data', (m: ProcessingRequest) => {
        if (m.request_body) {
          held.push(m.request_body.body ?? Buffer.alloc(0));
          if (m.request_body.end_of_stream !== true) return;
          call.write(headersResponse('request'));
          call.write(streamedBodyChunk('request', Buffer.concat(held), true));
        } else if (m.response_headers) {
          call.write(headersResponse('response'));
        }
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { port, server };
}

/** Consecutive repeats collapsed: the order in which the servers had the client. */
function runs<T>(xs: readonly T[]): T[] {
  return xs.filter((x, i) => i === 0 || xs[i - 1] !== x);
}

test('pairedSideOrder alternates the side that goes first round by round, as eppFirst does for the EPP bench', () => {
  expect([0, 1, 2, 3].map((r) => pairedSideOrder(r))).toEqual([[0, 1], [1, 0], [0, 1], [1, 0]]);
  for (let r = 0; r < 6; r++) expect(pairedSideOrder(r)[0] === 0).toBe(eppFirst(r, 0));
});

test('drivePaired: A and B each go first in half the rounds, and every measured phase follows a warm-up on its side', async () => {
  const arrivals: string[] = [];
  const a = await floorLike('A', arrivals);
  const b = await floorLike('B', arrivals);
  const steps: PairedStep[] = [];
  try {
    const rounds = 4;
    const { epp: A, floor: B } = await drivePaired(a.port, b.port, workload(1024, 8), 0.2, 4, { rounds, warmMs: 20, onStep: (s) => steps.push(s) });

    // What the servers saw, whatever the steps say: warm-up A B, then rounds A B | B A | A B | B A, so the side that ended
    // one round opens the next (seven runs, where A first in every round gave ten, A B A B …).
    expect(runs(arrivals)).toEqual(['A', 'B', 'A', 'B', 'A', 'B', 'A']);

    // Which side goes first in each round: A, B, A, B.
    const first = Array.from({ length: rounds }, (_, r) => steps.find((s) => s.round === r)!.side);
    expect(first).toEqual([0, 1, 0, 1]);

    // Each side's slice in each round: one request in flight, unmeasured load, then the measured phase, uninterrupted.
    const side = (k: 0 | 1) => (k === 0 ? 'A' : 'B');
    const slices = steps.filter((s) => s.round >= 0).map((s) => `${s.round}${side(s.side)}:${s.phase}`);
    const slice = (r: number, k: 0 | 1) => [`${r}${side(k)}:serial`, `${r}${side(k)}:warm`, `${r}${side(k)}:measured`];
    expect(slices).toEqual([...slice(0, 0), ...slice(0, 1), ...slice(1, 1), ...slice(1, 0), ...slice(2, 0), ...slice(2, 1), ...slice(3, 1), ...slice(3, 0)]);
    // Both warmed before the first round.
    expect(steps.filter((s) => s.round === -1).map((s) => `${side(s.side)}:${s.phase}`)).toEqual(['A:warm-up', 'B:warm-up']);

    // A requests/s per round and side, for per-round ratios.
    expect(A.roundRps).toHaveLength(rounds);
    expect(B.roundRps).toHaveLength(rounds);
    for (const x of [...A.roundRps, ...B.roundRps]) expect(x).toBeGreaterThan(0);
    expect(A.rejected + B.rejected).toBe(0);
  } finally {
    a.server.forceShutdown();
    b.server.forceShutdown();
  }
});

test('drivePaired names a round count or warm-up it cannot keep', async () => {
  await expect(drivePaired(1, 2, [], 1, 1, { rounds: 0 })).rejects.toThrow('rounds must be an integer >= 1, got 0');
  await expect(drivePaired(1, 2, [], 1, 1, { warmMs: -1 })).rejects.toThrow('warmMs must be a non-negative number of milliseconds, got -1');
});
