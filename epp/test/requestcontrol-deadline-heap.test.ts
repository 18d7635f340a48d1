import { seededRandom } from '@kvroute/testkit';
import { DeadlineHeap, type DeadlineEntry } from '../src/requestcontrol/deadline-heap';

interface Entry extends DeadlineEntry {
  readonly name: string;
}

function entry(name: string, deadlineMs: number, seq: number): Entry {
  return { name, deadlineMs, seq, left: false };
}

describe('DeadlineHeap (the flow-control queue\'s deadlines)', () => {
  it('hands out the due entries earliest first, ties in arrival order, and keeps the later ones', () => {
    const heap = new DeadlineHeap<Entry>();
    [entry('c', 30, 0), entry('a', 10, 1), entry('b2', 20, 3), entry('b1', 20, 2), entry('late', Infinity, 4)].forEach((e) => heap.add(e));
    expect(heap.peek()?.name).toBe('a');
    expect(heap.takeDue(9)).toEqual([]);
    const due = heap.takeDue(20);
    expect(due.map((e) => e.name)).toEqual(['a', 'b1', 'b2']);
    expect(due.every((e) => e.left)).toBe(true);
    expect(heap.size).toBe(2);
    expect(heap.peek()?.name).toBe('c');
    expect(heap.takeDue(1e12).map((e) => e.name)).toEqual(['c']);
    // No deadline (maxWaitMs Infinity) never comes due.
    expect(heap.peek()?.name).toBe('late');
    expect(heap.takeDue(Number.MAX_VALUE)).toEqual([]);
  });

  it('skips entries that left (dispatched, aborted, shed), and leaving twice counts once', () => {
    const heap = new DeadlineHeap<Entry>();
    const a = entry('a', 10, 0);
    const b = entry('b', 20, 1);
    const c = entry('c', 30, 2);
    [a, b, c].forEach((e) => heap.add(e));
    heap.leave(a);
    heap.leave(a);
    heap.leave(c);
    expect(heap.size).toBe(1);
    expect(heap.peek()).toBe(b);
    expect(heap.takeDue(100)).toEqual([b]);
    expect(heap.peek()).toBeUndefined();
    expect(heap.size).toBe(0);
  });

  it('matches a sorted list through 20,000 random adds, leaves and expiries, and never holds more than about twice the waiting entries', () => {
    const rnd = seededRandom(42);
    const heap = new DeadlineHeap<Entry>();
    const model = new Set<Entry>();
    let now = 0;
    let seq = 0;
    let maxHeld = 0;
    for (let step = 0; step < 20_000; step++) {
      const r = rnd();
      if (r < 0.5) {
        // Mostly now + a fixed wait (the queue's default deadline), some a deadline of their own, some none.
        const deadline = rnd() < 0.1 ? Infinity : now + (rnd() < 0.7 ? 1_000 : Math.floor(rnd() * 5_000));
        const e = entry(`e${seq}`, deadline, seq++);
        heap.add(e);
        model.add(e);
      } else if (r < 0.85 && model.size > 0) {
        // A waiter leaves out of deadline order: the one at a random place in arrival order.
        const all = [...model];
        const e = all[Math.floor(rnd() * all.length)]!;
        heap.leave(e);
        model.delete(e);
      } else {
        now += Math.floor(rnd() * 400);
        const expected = [...model].filter((e) => e.deadlineMs <= now).sort((x, y) => x.deadlineMs - y.deadlineMs || x.seq - y.seq);
        expect(heap.takeDue(now)).toEqual(expected);
        for (const e of expected) model.delete(e);
      }
      expect(heap.size).toBe(model.size);
      const earliest = [...model].sort((x, y) => x.deadlineMs - y.deadlineMs || x.seq - y.seq)[0];
      expect(heap.peek()).toBe(earliest);
      maxHeld = Math.max(maxHeld, heap.held - 2 * heap.size);
    }
    expect(maxHeld).toBeLessThanOrEqual(32);
  });
});
