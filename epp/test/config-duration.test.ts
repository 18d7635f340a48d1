import { parseDuration } from '../src/config';

describe('parseDuration (Go time.ParseDuration syntax, in milliseconds)', () => {
  it.each([
    ['30m', 1_800_000],
    ['2m', 120_000],
    ['200ms', 200],
    ['1h30m', 5_400_000],
    ['1.5s', 1_500],
    ['.5s', 500],
    ['90s', 90_000],
    ['1m30s500ms', 90_500],
    ['250us', 0.25],
    ['250µs', 0.25],
    ['250μs', 0.25],
    ['1000000ns', 1],
    ['0', 0],
    ['0s', 0],
  ])('%s = %d ms', (text, milliseconds) => {
    expect(parseDuration(text)).toBeCloseTo(milliseconds, 9);
  });

  it.each([
    ['', 'must be a duration like "30m", "90s", "1h30m" or "200ms" (units h, m, s, ms, us, ns), got ""'],
    ['30', 'must be a duration like "30m", "90s", "1h30m" or "200ms" (units h, m, s, ms, us, ns), got "30" (a number without a unit)'],
    ['1d', 'must be a duration like "30m", "90s", "1h30m" or "200ms" (units h, m, s, ms, us, ns), got "1d" (unexpected "1d")'],
    ['5m 3s', 'must be a duration like "30m", "90s", "1h30m" or "200ms" (units h, m, s, ms, us, ns), got "5m 3s" (unexpected " 3s")'],
    ['-5m', 'must not be negative, got "-5m"'],
    ['m', 'must be a duration like "30m", "90s", "1h30m" or "200ms" (units h, m, s, ms, us, ns), got "m" (unexpected "m")'],
  ])('rejects %j', (text, message) => {
    expect(() => parseDuration(text)).toThrow(message);
  });
});
