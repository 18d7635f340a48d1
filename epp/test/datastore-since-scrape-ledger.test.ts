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

  it('an end seen late (endedSince) counts only while no page was requested since its route: a page since may show it gone already (review 51)', () => {
    const ledger = new SinceScrapeLedger();
    ledger.routed(100);
    ledger.endedSince(100, 150); // no page since the route: the route and its end net out
    expect(ledger.net).toBe(0);
    ledger.routed(200);
    ledger.pageRequestedAt(210); // the route is in that page, and maybe its end too
    expect(ledger.net).toBe(0);
    ledger.endedSince(200, 400); // so the late end is not counted a second time
    expect(ledger.net).toBe(0);
    ledger.routed(500);
    ledger.pageRequestedAt(450); // an older page than the route: the route is still unseen
    ledger.endedSince(500, 600);
    expect(ledger.net).toBe(0);
    ledger.routed(700);
    ledger.clear(710); // a reading set by hand stands for the server as of its time
    ledger.endedSince(700, 800);
    expect(ledger.net).toBe(0);
    ledger.ended(900); // an end seen when it happens is counted whatever the pages
    expect(ledger.net).toBe(-1);
  });
});
