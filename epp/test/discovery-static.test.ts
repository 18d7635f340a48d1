import { Datastore } from '../src/datastore/datastore';
import { EndpointSpecError, StaticDiscovery, parseEndpointList } from '../src/datastore/static-discovery';

describe('parseEndpointList', () => {
  it('parses IPv4, host names and bracketed IPv6', () => {
    expect(parseEndpointList('127.0.0.1:8001, vllm-0.local:8002,[::1]:8003,[FD00::A]:9000')).toEqual([
      { key: '127.0.0.1:8001', name: '127.0.0.1:8001', namespace: '', address: '127.0.0.1', port: 8001, labels: {} },
      { key: 'vllm-0.local:8002', name: 'vllm-0.local:8002', namespace: '', address: 'vllm-0.local', port: 8002, labels: {} },
      { key: '[::1]:8003', name: '[::1]:8003', namespace: '', address: '::1', port: 8003, labels: {} },
      { key: '[fd00::a]:9000', name: '[fd00::a]:9000', namespace: '', address: 'fd00::a', port: 9000, labels: {} },
    ]);
  });

  it('accepts an array of entries', () => {
    expect(parseEndpointList(['10.0.0.1:1', '10.0.0.1:65535']).map((e) => e.port)).toEqual([1, 65535]);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['127.0.0.1:8001,127.0.0.1:0', '127.0.0.1:0', /#2 "127.0.0.1:0": port 0 is out of range/],
    ['127.0.0.1:65536', '127.0.0.1:65536', /out of range/],
    ['127.0.0.1:80a', '127.0.0.1:80a', /port "80a" is not a number/],
    ['127.0.0.1:-1', '127.0.0.1:-1', /port "-1" is not a number/],
    ['127.0.0.1', '127.0.0.1', /missing ":port"/],
    ['127.0.0.1:', '127.0.0.1:', /missing port/],
    [':8000', ':8000', /missing host/],
    ['::1:8000', '::1:8000', /an IPv6 address needs brackets and a port, e.g. \[::1\]:8000/],
    ['fd00::zz:80', 'fd00::zz:80', /IPv6 addresses must be in brackets/],
    ['[::1]', '[::1]', /expected ":port" after "\]"/],
    ['[::1:8000', '[::1:8000', /missing "\]"/],
    ['[::1]8000', '[::1]8000', /expected ":port" after "\]"/],
    ['[10.0.0.1]:80', '[10.0.0.1]:80', /is not an IPv6 address/],
    ['300.1.1.1:80', '300.1.1.1:80', /not a valid IPv4 address/],
    ['bad_host:80', 'bad_host:80', /not a valid host name/],
    ['-bad:80', '-bad:80', /not a valid host name/],
    ['a:1,,b:2', '', /#2 "": empty entry/],
    ['a:1,', '', /#2 "": empty entry/],
  ];

  it.each(bad)('rejects %s naming the entry', (spec, entry, message) => {
    let caught: unknown;
    try {
      parseEndpointList(spec);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(EndpointSpecError);
    expect((caught as EndpointSpecError).entry.trim()).toBe(entry);
    expect((caught as Error).message).toMatch(message);
  });

  it('rejects duplicates, also when they differ only in case or spelling', () => {
    expect(() => parseEndpointList('127.0.0.1:8001,127.0.0.1:8001')).toThrow(/#2 "127.0.0.1:8001": duplicates endpoint #1/);
    expect(() => parseEndpointList('Host.Example:80,host.example:80')).toThrow(/duplicates endpoint #1/);
    expect(() => parseEndpointList('[FD00::1]:80,[fd00::1]:80')).toThrow(/duplicates endpoint #1/);
  });

  it('rejects an empty list', () => {
    expect(() => parseEndpointList('')).toThrow(/empty/);
    expect(() => parseEndpointList([])).toThrow(/empty/);
  });
});

describe('StaticDiscovery', () => {
  it('fills the datastore and reports synced', async () => {
    const ds = new Datastore({ scrape: false });
    const d = new StaticDiscovery(ds, '127.0.0.1:8001,127.0.0.1:8002');
    expect(d.synced).toBe(false);
    expect(ds.poolSynced).toBe(false);
    await d.start();
    expect(d.synced).toBe(true);
    expect(ds.poolSynced).toBe(true);
    expect(ds.endpoints().map((e) => e.key)).toEqual(['127.0.0.1:8001', '127.0.0.1:8002']);
    expect(d.lastError).toBeUndefined();
    await d.stop();
    expect(ds.poolSynced).toBe(false);
    await ds.stop();
  });

  it('fails at construction on a bad list', () => {
    const ds = new Datastore({ scrape: false });
    expect(() => new StaticDiscovery(ds, '127.0.0.1:8001,nope')).toThrow(EndpointSpecError);
    void ds.stop();
  });
});
