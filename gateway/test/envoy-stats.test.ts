/**
 * Envoy's ext_proc counters as the gateway keeps and serves them (`src/envoy-stats.ts`): the names, type and label of
 * Envoy's Prometheus output for the Istio gateway, each release's counter list, and which counter moves for a healthy
 * EPP, an unreachable one, a silent one (message timeout) and a fail-closed filter. kvroute's PrometheusRule pages on
 * `failure_mode_allowed` and `message_timeouts`; the real-Prometheus test (`test/prometheus-alerts.test.ts`) scrapes
 * this endpoint.
 */
import type { ExtProcServer } from '@kvroute/epp/extproc';
import { parsePrometheusText } from '@kvroute/protocol/prometheus';
import { envoySemantics, ENVOY_SEMANTICS_VERSIONS, type EnvoySemantics } from '../src/envoy-semantics';
import { ENVOY_STATS_PATH } from '../src/envoy-stats';
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

jest.setTimeout(30_000);

let ups: Upstream[];
let director: TestDirector;
let epp: ExtProcServer;

beforeAll(async () => {
  ups = await Promise.all([startUpstream(), startUpstream()]);
  director = new TestDirector(ups.map((u) => u.address));
  epp = await startEpp(director);
});

afterAll(async () => {
  await epp.stop();
  await Promise.all(ups.map((u) => u.close()));
  destroyClientAgent();
});

const json = { 'content-type': 'application/json' };
const semantics = (v: string) => envoySemantics(v) as EnvoySemantics;

describe('the counter list of each release (ALL_EXT_PROC_FILTER_STATS)', () => {
  test('1.35 has send_immediate_resp_upstream_ignored, 1.36 drops it, 1.37 and 1.38 add immediate_responses_sent and server_half_closed', () => {
    const common = ['streams_started', 'stream_msgs_sent', 'stream_msgs_received', 'spurious_msgs_received', 'streams_closed',
      'streams_failed', 'failure_mode_allowed', 'message_timeouts', 'rejected_header_mutations', 'override_message_timeout_received',
      'override_message_timeout_ignored', 'clear_route_cache_ignored', 'clear_route_cache_disabled', 'clear_route_cache_upstream_ignored'];
    expect(semantics('1.35.0').extProcCounters).toEqual([...common, 'send_immediate_resp_upstream_ignored', 'http_not_ok_resp_received']);
    expect(semantics('1.35').extProcCounters).toEqual(semantics('1.35.0').extProcCounters);
    expect(semantics('1.36').extProcCounters).toEqual([...common, 'http_not_ok_resp_received']);
    for (const v of ['1.37', '1.38']) {
      expect(semantics(v).extProcCounters).toEqual([...common, 'http_not_ok_resp_received', 'immediate_responses_sent', 'server_half_closed']);
    }
  });
});

describe('GET /stats/prometheus', () => {
  test.each(ENVOY_SEMANTICS_VERSIONS)('serves every counter of Envoy %s as envoy_http_ext_proc_<counter>{http_conn_manager_prefix}, typed counter', async (version) => {
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${epp.port}`, envoySemantics: version });
    try {
      expect((await send(gw.port, { body: completion(), headers: json })).status).toBe(200);
      const r = await send(gw.port, { method: 'GET', path: ENVOY_STATS_PATH });
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
      const parsed = parsePrometheusText(r.body.toString('utf8'));
      expect(parsed.issues).toEqual([]);
      expect([...parsed.families.keys()].sort()).toEqual(semantics(version).extProcCounters.map((c) => `envoy_http_ext_proc_${c}`).sort());
      for (const family of parsed.families.values()) {
        expect(family.type).toBe('counter');
        expect(family.samples).toHaveLength(1);
        expect(family.samples[0].labels).toEqual({ http_conn_manager_prefix: 'outbound_0.0.0.0_80' });
      }
      expect(parsed.families.get('envoy_http_ext_proc_streams_started')?.samples[0].value).toBe(1);
    } finally {
      await gw.close();
    }
  });

  test('serves nothing without an EPP: there is no ext_proc filter to count', async () => {
    const gw = await gateway({ endpoints: ups.map((u) => u.address) });
    try {
      expect((await send(gw.port, { body: completion(), headers: json })).status).toBe(200);
      const r = await send(gw.port, { method: 'GET', path: ENVOY_STATS_PATH });
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe('');
      expect(gw.envoyStats()).toEqual({});
    } finally {
      await gw.close();
    }
  });
});

describe('which counters move', () => {
  test('a healthy EPP: streams started, messages both ways, every stream closed, nothing failed', async () => {
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${epp.port}` });
    try {
      for (let i = 0; i < 4; i++) expect((await send(gw.port, { body: completion(`q${i}`), headers: json })).status).toBe(200);
      await waitFor(() => gw.envoyStats().streams_closed === 4, 'the streams closed at the end of each exchange');
      const s = gw.envoyStats();
      expect(s).toMatchObject({ streams_started: 4, streams_failed: 0, failure_mode_allowed: 0, message_timeouts: 0, spurious_msgs_received: 0 });
      // Request headers, request body, response headers each way (trailers SEND: vLLM-like upstreams send none).
      expect(s.stream_msgs_sent).toBe(12);
      expect(s.stream_msgs_received).toBe(12);
      expect(gw.stats().picksHonoured).toBe(4);
    } finally {
      await gw.close();
    }
  });

  test('an unreachable EPP: every stream fails and fails open (streams_failed = failure_mode_allowed)', async () => {
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${await deadPort()}` });
    try {
      for (let i = 0; i < 5; i++) expect((await send(gw.port, { body: completion(`q${i}`), headers: json })).status).toBe(200);
      expect(gw.envoyStats()).toMatchObject({
        streams_started: 5, streams_failed: 5, failure_mode_allowed: 5, streams_closed: 5, message_timeouts: 0, stream_msgs_received: 0,
      });
      expect(gw.stats().failOpenReasons.unavailable).toBe(5);
    } finally {
      await gw.close();
    }
  });

  test('an unreachable EPP on Envoy 1.37: the half-close counted by onGrpcError and again by onGrpcCloseWithStatus', async () => {
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${await deadPort()}`, envoySemantics: '1.37' });
    try {
      expect((await send(gw.port, { body: completion(), headers: json })).status).toBe(200);
      expect(gw.envoyStats()).toMatchObject({ streams_failed: 1, failure_mode_allowed: 1, server_half_closed: 2, immediate_responses_sent: 0 });
    } finally {
      await gw.close();
    }
  });

  test('a silent EPP: a message timeout that fails open counts in message_timeouts and failure_mode_allowed, not streams_failed', async () => {
    const gw = await gateway({ endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${epp.port}`, messageTimeoutMs: 200 });
    try {
      const r = await send(gw.port, { body: completion(), headers: { ...json, 'x-test-action': 'hang' } });
      expect(r.status).toBe(200);
      expect(gw.envoyStats()).toMatchObject({ streams_started: 1, message_timeouts: 1, failure_mode_allowed: 1, streams_failed: 0, streams_closed: 1 });
    } finally {
      await gw.close();
    }
  });

  test('failure_mode_allow false: the timeout is counted, nothing failed open, and (1.37) the 504 is an immediate response', async () => {
    const gw = await gateway({
      endpoints: ups.map((u) => u.address), extProc: `${LOOPBACK}:${epp.port}`, messageTimeoutMs: 200, failureModeAllow: false, envoySemantics: '1.37',
    });
    try {
      const r = await send(gw.port, { body: completion(), headers: { ...json, 'x-test-action': 'hang' } });
      expect(r.status).toBe(504);
      expect(gw.envoyStats()).toMatchObject({ message_timeouts: 1, failure_mode_allowed: 0, immediate_responses_sent: 1 });
    } finally {
      await gw.close();
    }
  });
});
