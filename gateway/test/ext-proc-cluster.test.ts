/**
 * Several EPP replicas behind the ext_proc filter (`src/ext-proc-cluster.ts`): real ext_proc gRPC servers on loopback
 * (the EPP's own server with a test director each), stopped and restarted on their port as a killed pod comes back.
 * Envoy facts pinned here: Istio's LEAST_REQUEST default (cluster_traffic_policy.go @ 011b88bb13), outlier detection's
 * consecutive_5xx ejection, max_ejection_percent and interval unejection (outlier_detection_impl.cc @ 00c7146d95), and
 * no retry of a failed ext_proc stream on another host (async_client_impl.cc startRaw → initialize(false), no
 * grpc_service.retry_policy in kvroute's EnvoyFilter).
 */
import * as grpc from '@grpc/grpc-js';
import * as net from 'node:net';
import type { ExtProcServer } from '@kvroute/epp/extproc';
import { parseArgs } from '../src/cli';
import { resolveOptions, GatewayConfigError } from '../src/options';
import type { Gateway } from '../src/gateway';
import {
  completion,
  deadPort,
  destroyClientAgent,
  gateway,
  LOOPBACK,
  send,
  startEpp,
  startUpstream,
  TestDirector,
  waitFor,
  type Upstream,
} from './harness';
import { startScriptedExtProc } from './scripted-ext-proc';

jest.setTimeout(60_000);

let ups: Upstream[];
const json = { 'content-type': 'application/json' };

beforeAll(async () => {
  ups = await Promise.all([startUpstream(), startUpstream()]);
});

afterAll(async () => {
  await Promise.all(ups.map((u) => u.close()));
  destroyClientAgent();
});

interface Replica {
  director: TestDirector;
  server: ExtProcServer;
  readonly port: number;
  readonly address: string;
}

async function replica(port = 0): Promise<Replica> {
  const director = new TestDirector(ups.map((u) => u.address));
  const server = await startEpp(director, port);
  return { director, server, port: server.port, address: `${LOOPBACK}:${server.port}` };
}

async function sendMany(gw: Gateway, n: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) statuses.push((await send(gw.port, { body: completion(`p${i}`), headers: json })).status);
  return statuses;
}

describe('options and flags', () => {
  it('keeps the single --ext-proc form and takes several as a comma list or a repeated flag', () => {
    expect(resolveOptions({ endpoints: ['127.0.0.1:1'], extProc: '127.0.0.1:9002' }).extProcTargets).toEqual(['127.0.0.1:9002']);
    const cmd = parseArgs(['--endpoints', '127.0.0.1:1', '--ext-proc', '127.0.0.1:9002,127.0.0.1:9003', '--ext-proc', '127.0.0.1:9004']);
    expect(cmd.kind === 'run' && resolveOptions(cmd.options).extProcTargets).toEqual(['127.0.0.1:9002', '127.0.0.1:9003', '127.0.0.1:9004']);
    expect(() => parseArgs(['--endpoints', '127.0.0.1:1', '--ext-proc', '127.0.0.1:9002', '--ext-proc', '127.0.0.1:9002']))
      .toThrow('--ext-proc: 127.0.0.1:9002 is listed twice');
  });

  it('defaults to Istio\'s LEAST_REQUEST and no outlier detection; "on" is Envoy\'s defaults', () => {
    const o = resolveOptions({ endpoints: ['127.0.0.1:1'], extProc: ['127.0.0.1:2', '127.0.0.1:3'] });
    expect(o.extProcLbPolicy).toBe('least-request');
    expect(o.extProcOutlierDetection).toBeNull();
    const cmd = parseArgs(['--endpoints', '127.0.0.1:1', '--ext-proc', '127.0.0.1:2', '--ext-proc-outlier-detection', 'on']);
    // outlier_detection_impl.h: interval 10 s, base ejection 30 s, consecutive_5xx 5, max_ejection_percent 10, max ejection 300 s.
    expect(cmd.kind === 'run' && resolveOptions(cmd.options).extProcOutlierDetection).toEqual({
      consecutive5xx: 5, consecutiveGatewayFailure: 0, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionTimeMs: 300_000, maxEjectionPercent: 10,
    });
  });

  it('names the flag and the allowed fields for a bad outlier detection value', () => {
    expect(() => parseArgs(['--endpoints', '127.0.0.1:1', '--ext-proc', '127.0.0.1:2', '--ext-proc-outlier-detection', 'bogus=1']))
      .toThrow("--ext-proc-outlier-detection: unknown field 'bogus' (allowed: consecutive5xx, consecutiveGatewayFailure, intervalMs, baseEjectionTimeMs, maxEjectionTimeMs, maxEjectionPercent)");
    expect(() => parseArgs(['--endpoints', '127.0.0.1:1', '--ext-proc', '127.0.0.1:2', '--ext-proc-outlier-detection', 'maxEjectionPercent=101']))
      .toThrow('--ext-proc-outlier-detection maxEjectionPercent: must be an integer in 0..100');
    expect(() => resolveOptions({ endpoints: ['127.0.0.1:1'], extProc: '127.0.0.1:2', extProcOutlierDetection: { baseEjectionTimeMs: 5000, maxEjectionTimeMs: 1000 } }))
      .toThrow(GatewayConfigError);
    expect(() => parseArgs(['--endpoints', '127.0.0.1:1', '--ext-proc-lb-policy', 'random'])).toThrow('--ext-proc-lb-policy: expects one of least-request, round-robin');
  });
});

describe('load balancing over EPP replicas', () => {
  it('round robin alternates streams between the replicas', async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: [a.address, b.address], extProcLbPolicy: 'round-robin' });
    try {
      expect(await sendMany(gw, 20)).toEqual(Array(20).fill(200));
      expect(a.director.requests.length).toBe(10);
      expect(b.director.requests.length).toBe(10);
      const cluster = gw.stats().extProc.cluster!;
      expect(cluster.lbPolicy).toBe('round-robin');
      expect(cluster.hosts[a.address]).toMatchObject({ streams: 10, failures: 0, ejections: 0, ejected: false });
      expect(gw.stats().picksHonoured).toBe(20);
    } finally {
      await gw.close();
      await Promise.all([a.server.stop(0), b.server.stop(0)]);
    }
  });

  it('least request (P2C) sends concurrent streams to the replica with fewer open streams', async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    // The hung streams must stay open through all 40 requests: at the default 1 s message timeout they failed open
    // (and closed) part-way through the loop on a loaded machine, leaving the busy replica with no open stream.
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: [a.address, b.address], messageTimeoutMs: 60_000 });
    try {
      // Hang 3 streams wherever they land, then every further stream: P2C never picks the busier replica when the two
      // draws differ, and equal draws tie to the same host, so over 40 requests both replicas serve, and the less
      // loaded one serves most.
      const hung = [0, 1, 2].map((i) => send(gw.port, { body: completion(`h${i}`), headers: { ...json, 'x-test-action': 'hang' } }).catch(() => undefined));
      await waitFor(() => a.director.requests.length + b.director.requests.length === 3, 'the 3 hung streams at the replicas', { limitMs: 10_000 });
      const busy = a.director.requests.length >= 2 ? a : b;
      const idle = busy === a ? b : a;
      const before = { busy: busy.director.requests.length, idle: idle.director.requests.length };
      const active = (r: Replica) => gw.stats().extProc.cluster!.hosts[r.address].activeStreams;
      const statuses: number[] = [];
      for (let i = 0; i < 40; i++) {
        statuses.push((await send(gw.port, { body: completion(`p${i}`), headers: json })).status);
        // The client can have its response before that request's ext_proc stream ends: a pick made while it lingers
        // sees the idle replica as busy as the other (a tie the first draw wins), so each pick waits for it to close.
        await waitFor(() => active(idle) === before.idle && active(busy) === before.busy, 'the last stream to close', { limitMs: 10_000 });
      }
      expect(statuses).toEqual(Array(40).fill(200));
      const toIdle = idle.director.requests.length - before.idle;
      const toBusy = busy.director.requests.length - before.busy;
      expect(toIdle + toBusy).toBe(40);
      expect(toIdle).toBeGreaterThan(toBusy);
      expect(gw.stats().extProc.cluster!.hosts[busy.address].activeStreams).toBeGreaterThanOrEqual(2);
      await gw.close();
      await Promise.all(hung);
    } finally {
      await gw.close();
      await Promise.all([a.server.stop(0), b.server.stop(0)]);
    }
  });

  it('does not retry a failed stream on another replica: the request fails open (failure_mode_allow)', async () => {
    const a = await replica();
    const dead = `${LOOPBACK}:${await deadPort()}`;
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: [dead, a.address], extProcLbPolicy: 'round-robin' });
    try {
      expect(await sendMany(gw, 4)).toEqual([200, 200, 200, 200]);
      // Round robin: the 1st and 3rd streams went to the dead replica and were not tried on the live one.
      expect(a.director.requests.length).toBe(2);
      const s = gw.stats();
      expect(s.failOpens).toBe(2);
      expect(s.failOpenReasons.unavailable).toBe(2);
      expect(s.extProc.cluster!.hosts[dead]).toMatchObject({ streams: 2, failures: 2, ejected: false });
    } finally {
      await gw.close();
      await a.server.stop(0);
    }
  });
});

function putMembers(gw: Gateway, members: unknown): Promise<{ status: number; body: Record<string, any> }> {
  return send(gw.port, { method: 'PUT', path: '/gateway/ext-proc/members', body: JSON.stringify({ members }), headers: json })
    .then((r) => ({ status: r.status, body: r.json() }));
}

/** A TCP relay to `port` on loopback that keeps the connections it carries (closed ones leave the set). */
async function countingRelay(port: number): Promise<{ relayed: Set<net.Socket>; address: string; close(): Promise<void> }> {
  const relayed = new Set<net.Socket>();
  const relay = net.createServer((inbound) => {
    relayed.add(inbound);
    const outbound = net.connect(port, LOOPBACK);
    inbound.pipe(outbound).pipe(inbound);
    const drop = (): void => {
      relayed.delete(inbound);
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on('close', drop).on('error', drop);
    outbound.on('close', drop).on('error', drop);
  });
  await new Promise<void>((resolve) => relay.listen(0, LOOPBACK, resolve));
  return {
    relayed,
    address: `${LOOPBACK}:${(relay.address() as net.AddressInfo).port}`,
    close: async () => {
      for (const s of relayed) s.destroy();
      await new Promise((resolve) => relay.close(resolve));
    },
  };
}

describe('EDS membership (the EPP Service\'s ready endpoints)', () => {
  it('a replica removed from the endpoint set gets no streams, and one added back gets them with a fresh outlier state', async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    const gw = await gateway({
      endpoints: ups.map((u) => u.address), extProc: [a.address, b.address], extProcLbPolicy: 'round-robin',
      extProcOutlierDetection: { consecutiveGatewayFailure: 1, maxEjectionPercent: 50, baseEjectionTimeMs: 600_000 },
    });
    try {
      await b.server.stop(0);
      // B dies: its first failed stream ejects it (for 10 minutes); then its pod is no longer Ready and EDS drops it.
      expect(await sendMany(gw, 2)).toEqual([200, 200]);
      expect(gw.stats().extProc.cluster!.hosts[b.address]).toMatchObject({ ejected: true, member: true });
      const removed = await putMembers(gw, [a.address]);
      expect(removed.status).toBe(200);
      expect(removed.body.hosts[b.address]).toMatchObject({ member: false, ejected: false });
      const failOpens = gw.stats().failOpens;
      expect(await sendMany(gw, 6)).toEqual(Array(6).fill(200));
      expect(gw.stats().failOpens).toBe(failOpens);
      // B is back and Ready: EDS adds it, a new host to Envoy (not ejected any more), and streams reach it at once.
      b.director = new TestDirector(ups.map((u) => u.address));
      b.server = await startEpp(b.director, b.port);
      expect((await putMembers(gw, [a.address, b.address])).body.hosts[b.address]).toMatchObject({ member: true, ejected: false });
      expect(await sendMany(gw, 4)).toEqual(Array(4).fill(200));
      expect(b.director.requests.length).toBe(2);
    } finally {
      await gw.close();
      await Promise.all([a.server.stop(0), b.server.stop(0)]);
    }
  });

  // Envoy drains a host EDS removed: its connection pools are drained and deleted, the connection closed once its
  // streams have ended (envoyproxy/envoy source/common/upstream/cluster_manager_impl.cc
  // ThreadLocalClusterManagerImpl::removeHosts → ClusterEntry::drainConnPools → drainOrCloseConnPools(host,
  // DrainBehavior::DrainAndDelete); conn_pool_base.cc drainConnectionsImpl). The gateway kept every replaced channel
  // open until it closed: each time a replica left and came back (a rolling restart, a readiness flap), one more HTTP/2
  // connection to it stayed open (grpc-js keeps an idle channel's connection for 30 minutes) and one more channel was
  // kept for good.
  it('a replica that leaves and comes back again and again keeps one connection: each replaced channel closes once its streams end, its counters kept', async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    // Replica B behind a TCP relay that counts the gateway's open connections to it.
    const { relayed, address: viaRelay, close: closeRelay } = await countingRelay(b.port);
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: [a.address, viaRelay], extProcLbPolicy: 'round-robin' });
    const flaps = 6;
    try {
      for (let i = 0; i < flaps; i++) {
        expect((await putMembers(gw, [a.address])).status).toBe(200);
        expect((await putMembers(gw, [a.address, viaRelay])).status).toBe(200);
        // Round robin over A and B: one stream on B's new channel.
        expect(await sendMany(gw, 2)).toEqual([200, 200]);
      }
      expect(b.director.requests.length).toBe(flaps);
      await waitFor(() => relayed.size === 1, 'one connection to replica B (the current channel\'s)', { limitMs: 10_000 })
        .catch(() => undefined);
      expect(relayed.size).toBe(1);
      // The counters of the channels closed stay in the totals.
      expect(gw.stats().extProc).toMatchObject({ streamsOpened: 2 * flaps, openStreams: 0 });
      expect(gw.envoyStats().streams_started).toBe(2 * flaps);
    } finally {
      await gw.close();
      await closeRelay();
      await Promise.all([a.server.stop(0), b.server.stop(0)]);
    }
  });

  it('a replaced channel keeps a stream still open to its end (Envoy drains a removed host\'s pool, it does not cut it), then closes', async () => {
    const b = await replica();
    const { relayed, address: viaRelay, close: closeRelay } = await countingRelay(b.port);
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: [viaRelay], messageTimeoutMs: 3000 });
    try {
      // A stream the EPP never answers: it stays open until the filter's message timeout (then the request fails open).
      const held = send(gw.port, { body: completion('held'), headers: { ...json, 'x-test-action': 'hang' } });
      await waitFor(() => b.director.requests.length === 1, 'the held stream at the EPP');
      expect((await putMembers(gw, [])).status).toBe(200);
      expect((await putMembers(gw, [viaRelay])).status).toBe(200);
      // Replaced, the old channel still carries the held stream; a new stream goes over the new channel.
      expect(gw.stats().extProc).toMatchObject({ openStreams: 1 });
      expect(await sendMany(gw, 1)).toEqual([200]);
      expect(relayed.size).toBe(2);
      expect((await held).status).toBe(200);
      await waitFor(() => relayed.size === 1, 'the old channel\'s connection closed', { limitMs: 10_000 }).catch(() => undefined);
      expect(relayed.size).toBe(1);
      expect(gw.stats().extProc).toMatchObject({ streamsOpened: 2, openStreams: 0 });
    } finally {
      await gw.close();
      await closeRelay();
      await b.server.stop(0);
    }
  });

  // Envoy drains a host's pools when EDS removes it, not when the host comes back (cluster_manager_impl.cc
  // ThreadLocalClusterManagerImpl::removeHosts: "purge any connection pools for hosts that got deleted" →
  // ClusterEntry::drainConnPools(hosts_removed) → DrainAndDelete). Session 74 drained the channel only when the replica
  // was added back, so a replica that left (not Ready, or gone for good) kept the gateway's HTTP/2 connection until then.
  it('a replica EDS removes has its connection closed once its open stream ends, without waiting for it to come back', async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    const { relayed, address: viaRelay, close: closeRelay } = await countingRelay(b.port);
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: [a.address, viaRelay], extProcLbPolicy: 'round-robin', messageTimeoutMs: 3000 });
    try {
      // Round robin: the first stream goes to A, the held one (never answered) to B.
      expect(await sendMany(gw, 1)).toEqual([200]);
      const held = send(gw.port, { body: completion('held'), headers: { ...json, 'x-test-action': 'hang' } });
      await waitFor(() => b.director.requests.length === 1, 'the held stream at B');
      expect((await putMembers(gw, [a.address])).status).toBe(200);
      // Removed, B keeps the stream it carries (Envoy drains, it does not cut); new streams go to A.
      expect(gw.stats().extProc).toMatchObject({ openStreams: 1 });
      expect(await sendMany(gw, 2)).toEqual([200, 200]);
      expect(relayed.size).toBe(1);
      expect((await held).status).toBe(200);
      await waitFor(() => relayed.size === 0, 'the removed replica\'s connection closed', { limitMs: 10_000 }).catch(() => undefined);
      expect(relayed.size).toBe(0);
      expect(gw.stats().extProc).toMatchObject({ streamsOpened: 4, openStreams: 0 });
      expect(gw.envoyStats().streams_started).toBe(4);
      // Back in the set, B gets streams again over a new connection.
      expect((await putMembers(gw, [a.address, viaRelay])).status).toBe(200);
      expect(await sendMany(gw, 2)).toEqual([200, 200]);
      expect(b.director.requests.length).toBe(2);
      expect(relayed.size).toBe(1);
      expect(gw.stats().extProc).toMatchObject({ streamsOpened: 6, openStreams: 0 });
    } finally {
      await gw.close();
      await closeRelay();
      await Promise.all([a.server.stop(0), b.server.stop(0)]);
    }
  });

  it('refuses an address that is not one of its EPP addresses, or a malformed body, naming what it expects', async () => {
    const a = await replica();
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: [a.address] });
    try {
      const unknown = await putMembers(gw, ['127.0.0.1:1']);
      expect(unknown.status).toBe(400);
      expect(unknown.body.error).toBe(`not an EPP address of this gateway: 127.0.0.1:1 (known: ${a.address})`);
      expect((await putMembers(gw, 'x')).body.error).toBe('body must be {"members": ["host:port", ...]}');
      expect(gw.stats().extProc.cluster!.hosts[a.address].member).toBe(true);
    } finally {
      await gw.close();
      await a.server.stop(0);
    }
  });
});

describe('outlier detection', () => {
  it('ejects a killed replica, sends its streams to the other, and takes it back after the ejection time', async () => {
    const [a, b] = await Promise.all([replica(), replica()]);
    const gw = await gateway({
      endpoints: ups.map((u) => u.address),
      extProc: [a.address, b.address],
      extProcLbPolicy: 'round-robin',
      extProcOutlierDetection: { consecutive5xx: 3, maxEjectionPercent: 50, baseEjectionTimeMs: 300, intervalMs: 100 },
    });
    try {
      expect(await sendMany(gw, 4)).toEqual([200, 200, 200, 200]);
      await b.server.stop(0);
      // Every request still succeeds (fail open) while B's streams fail; the third consecutive failure ejects B.
      await waitFor(async () => {
        expect((await send(gw.port, { body: completion(), headers: json })).status).toBe(200);
        return gw.stats().extProc.cluster!.hosts[b.address].ejected;
      }, 'replica B ejected', { limitMs: 20_000 });
      const c = gw.stats().extProc.cluster!;
      expect(c.hosts[b.address]).toMatchObject({ ejections: 1, failures: 3 });
      expect(c.ejectionsEnforcedTotal).toBe(1);
      expect(c.ejectionsActive).toBe(1);
      // Ejected: while B is still down nothing goes to it; A answers every stream, no fail-open.
      const failOpens = gw.stats().failOpens;
      const aBefore = a.director.requests.length;
      expect(await sendMany(gw, 6)).toEqual(Array(6).fill(200));
      // (an interval tick may uneject B in between; its next stream then fails and ejects it again)
      const c2 = gw.stats().extProc.cluster!;
      expect(a.director.requests.length - aBefore + (gw.stats().failOpens - failOpens)).toBe(6);
      expect(c2.hosts[b.address].failures - 3).toBe(gw.stats().failOpens - failOpens);

      // B comes back on its port; after the ejection time an interval tick unejects it and streams reach it again.
      b.director = new TestDirector(ups.map((u) => u.address));
      b.server = await startEpp(b.director, b.port);
      await waitFor(async () => {
        await send(gw.port, { body: completion(), headers: json });
        return b.director.requests.length > 0;
      }, 'a stream on the restarted replica B', { limitMs: 20_000 });
      await waitFor(() => !gw.stats().extProc.cluster!.hosts[b.address].ejected, 'replica B unejected', { limitMs: 10_000 });
      expect(gw.stats().extProc.cluster!.ejectionsActive).toBe(0);
      expect(gw.stats().errorsByStatus).toEqual({});
    } finally {
      await gw.close();
      await Promise.all([a.server.stop(0), b.server.stop(0)]);
    }
  });

  // Consecutive means consecutive: a success resets the host's 5xx and gateway-failure counts
  // (DetectorHostMonitorImpl::putHttpResponseCode, source/common/upstream/outlier_detection_impl.cc @ v1.35.0: the
  // non-5xx branch sets consecutive_5xx_ and consecutive_gateway_failure_ to 0).
  it('a stream answered between failures resets the consecutive count: 2 failures, 1 answer, 2 failures do not eject at consecutive5xx 3', async () => {
    // INTERNAL is a 500 to the detector (not a gateway failure); streams 0, 1, 3, 4 and 5 fail, stream 2 is answered.
    const epp = await startScriptedExtProc({ failOn: { message: 'request_headers', code: grpc.status.INTERNAL, streams: (i) => i !== 2 } });
    const gw = await gateway({
      endpoints: ups.map((u) => u.address), extProc: [epp.address],
      extProcOutlierDetection: { consecutive5xx: 3, maxEjectionPercent: 100, baseEjectionTimeMs: 600_000 },
    });
    try {
      expect(await sendMany(gw, 5)).toEqual(Array(5).fill(200));
      expect(epp.streams.map((s) => s.events.includes('failed'))).toEqual([true, true, false, true, true]);
      const c = gw.stats().extProc.cluster!;
      expect(c.hosts[epp.address]).toMatchObject({ ejected: false, failures: 4, consecutive5xx: 2 });
      expect(c.ejectionsDetected.consecutive_5xx).toBe(0);
      // The third failure in a row ejects it.
      expect(await sendMany(gw, 1)).toEqual([200]);
      expect(gw.stats().extProc.cluster!.hosts[epp.address]).toMatchObject({ ejected: true, ejections: 1 });
    } finally {
      await gw.close();
      await epp.stop();
    }
  });

  it('with Envoy\'s default max_ejection_percent (10) never ejects one of two replicas (ejections_overflow)', async () => {
    const a = await replica();
    const dead = `${LOOPBACK}:${await deadPort()}`;
    const gw = await gateway({
      endpoints: ups.map((u) => u.address), extProc: [a.address, dead], extProcLbPolicy: 'round-robin',
      extProcOutlierDetection: { consecutive5xx: 2 },
    });
    try {
      expect(await sendMany(gw, 8)).toEqual(Array(8).fill(200));
      const c = gw.stats().extProc.cluster!;
      expect(c.hosts[dead]).toMatchObject({ ejected: false, ejections: 0, failures: 4 });
      expect(c.ejectionsDetected.consecutive_5xx).toBe(2);
      expect(c.ejectionsOverflow).toBe(2);
      expect(gw.stats().failOpens).toBe(4);
    } finally {
      await gw.close();
      await a.server.stop(0);
    }
  });

  it('with every replica ejected a stream finds no healthy upstream and fails open', async () => {
    const dead = `${LOOPBACK}:${await deadPort()}`;
    const gw = await gateway({
      endpoints: ups.map((u) => u.address), extProc: [dead],
      extProcOutlierDetection: { consecutive5xx: 1, maxEjectionPercent: 100, baseEjectionTimeMs: 600_000 },
    });
    try {
      expect(await sendMany(gw, 3)).toEqual([200, 200, 200]);
      const c = gw.stats().extProc.cluster!;
      expect(c.hosts[dead]).toMatchObject({ ejected: true, streams: 1, failures: 1 });
      expect(c.noHealthyUpstream).toBe(2);
      expect(gw.stats().failOpens).toBe(3);
    } finally {
      await gw.close();
    }
  });
});

/**
 * No healthy EPP host (every EPP pod not Ready, or every replica ejected) with FULL_DUPLEX_STREAMED request bodies:
 * Envoy's gRPC client gets the cluster's "no healthy upstream" inside Filter::openStream (onGrpcError, then
 * IgnoreError or, failing closed, Error: `ext_proc.cc` @ v1.35.0 openStream L613-620), before the filter sends a
 * message, so `processing_complete_` is already set when decodeHeaders would drop Content-Length (L755-756): the request
 * goes on as the client sent it, every body chunk past the filter, and `streams_started` does not count the stream.
 */
describe.each(['1.35', '1.36'] as const)('Envoy %s, FULL_DUPLEX_STREAMED, no healthy EPP host', (version) => {
  const duplex = { processingMode: 'full-duplex', processingModeScope: 'vhost', envoySemantics: version } as const;

  async function withNoEppHost(failureModeAllow: boolean, run: (gw: Gateway) => Promise<void>): Promise<void> {
    const a = await replica();
    const gw = await gateway({ endpoints: [ups[0]!.address], extProc: [a.address], failureModeAllow, ...duplex });
    try {
      const put = await send(gw.port, { method: 'PUT', path: '/gateway/ext-proc/members', body: JSON.stringify({ members: [] }), headers: json });
      expect(put.status).toBe(200);
      await run(gw);
    } finally {
      await gw.close();
      await a.server.stop(0);
    }
  }

  it('failing open, the request reaches the fallback as sent: its whole body and its Content-Length', async () => {
    await withNoEppHost(true, async (gw) => {
      const body = completion('a prompt for a pool whose EPP has no ready pod');
      const before = ups[0]!.seen.length;
      const r = await send(gw.port, { body, headers: json });
      const seen = ups[0]!.seen[before];
      expect({ status: r.status, body: seen?.body.toString(), contentLength: seen?.headers['content-length'] })
        .toEqual({ status: 200, body, contentLength: String(Buffer.byteLength(body)) });
      expect(gw.stats()).toMatchObject({ failOpens: 1, lossyFailOpens: 0, failClosed: 0 });
      expect(gw.envoyStats()).toMatchObject({ failure_mode_allowed: 1, streams_failed: 1 });
      expect(gw.envoyStats().streams_started ?? 0).toBe(0);
    });
  });

  it('failing closed, the client gets an empty 500 and the pool nothing', async () => {
    await withNoEppHost(false, async (gw) => {
      const before = ups[0]!.seen.length;
      const r = await send(gw.port, { body: completion('refused'), headers: json });
      expect({ status: r.status, body: r.body.toString(), upstream: ups[0]!.seen.length - before }).toEqual({ status: 500, body: '', upstream: 0 });
      expect(gw.stats()).toMatchObject({ failClosed: 1, failOpens: 0 });
    });
  });
});
