import { MAX_LEDGER_EVENTS, SinceScrapeLedger } from '../src/datastore/since-scrape-ledger';

describe('SinceScrapeLedger: what a pod\'s last page cannot show', () => {
  it('nets routes against ends, and a page drops exactly the events at or before its request time', () => {
    const ledger = new SinceScrapeLedger();
    ledger.routed(100);
    ledger.routed(110);
    ledger.ended(120);
    ledger.routed(130);
    expect(ledger.net).toBe(2);
    ledger.pageRequestedAt(110); // the first two routes are in that page
    expect(ledger.net).toBe(0); // an end and a route after it
    ledger.pageRequestedAt(125);
    expect(ledger.net).toBe(1);
    ledger.pageRequestedAt(90); // an older page (out of order) drops nothing
    expect(ledger.net).toBe(1);
    ledger.pageRequestedAt(130);
    expect(ledger.net).toBe(0);
    ledger.ended(140);
    expect(ledger.net).toBe(-1);
    ledger.clear();
    expect(ledger.net).toBe(0);
  });

  it('keeps at most MAX_LEDGER_EVENTS, dropping the oldest as if a page had counted them, and stays exact through compaction', () => {
    const ledger = new SinceScrapeLedger();
    for (let i = 0; i < MAX_LEDGER_EVENTS + 10; i++) ledger.routed(i);
    expect(ledger.net).toBe(MAX_LEDGER_EVENTS);
    // Pages in steps, each dropping a slice: the net is always the events after the page.
    const last = MAX_LEDGER_EVENTS + 9;
    for (let t = 99; t < last; t += 100) {
      ledger.pageRequestedAt(t);
      expect(ledger.net).toBe(Math.min(MAX_LEDGER_EVENTS, last - t));
    }
    ledger.pageRequestedAt(last);
    expect(ledger.net).toBe(0);
    for (let i = 0; i < 5; i++) ledger.ended(last + 1 + i);
    expect(ledger.net).toBe(-5);
  });

  it('an end seen late (endedSince) counts only while its route is still unseen: a page that counted the route may show it gone already (review 51)', () => {
    const ledger = new SinceScrapeLedger();
    const a = ledger.routed(100);
    ledger.endedSince(a, 150); // no page since the route: the route and its end net out
    expect(ledger.net).toBe(0);
    const b = ledger.routed(200);
    ledger.pageRequestedAt(210); // the route is in that page, and maybe its end too
    expect(ledger.net).toBe(0);
    ledger.endedSince(b, 400); // so the late end is not counted a second time
    expect(ledger.net).toBe(0);
    ledger.pageRequestedAt(500); // a page requested in the route's millisecond, applied before the route happened
    const c = ledger.routed(500);
    ledger.endedSince(c, 600); // the route is still unseen: its end nets it out
    expect(ledger.net).toBe(0);
    const d = ledger.routed(700);
    ledger.pageRequestedAt(650); // a page older than the route leaves it unseen
    ledger.endedSince(d, 800);
    expect(ledger.net).toBe(0);
    const e = ledger.routed(900);
    ledger.clear(); // a reading set by hand stands for the server as of now
    ledger.endedSince(e, 950);
    expect(ledger.net).toBe(0);
    ledger.ended(1000); // an end seen when it happens is counted whatever the pages
    expect(ledger.net).toBe(-1);
  });

  it('route ids stay exact across compaction and the event cap', () => {
    const ledger = new SinceScrapeLedger();
    const ids: number[] = [];
    for (let i = 0; i < MAX_LEDGER_EVENTS + 200; i++) ids.push(ledger.routed(i));
    expect(ids[ids.length - 1]).toBe(MAX_LEDGER_EVENTS + 199);
    ledger.pageRequestedAt(3000); // compacts: routes 0..3000 counted
    const net = ledger.net;
    ledger.endedSince(ids[3000]!, 10_000); // counted by the page: no end
    expect(ledger.net).toBe(net);
    ledger.endedSince(ids[3001]!, 10_000); // still unseen: nets it
    expect(ledger.net).toBe(net - 1);
    ledger.endedSince(ids[0]!, 10_000); // dropped by the cap long ago: as if a page had counted it
    expect(ledger.net).toBe(net - 1);
  });
});
