/** FieldReader's enumerated fields: one check, one message shape, for every plugin parameter that takes a fixed set of strings. */
import { ConfigError } from '../src/config/errors';
import { FieldReader } from '../src/config/fields';

const reader = (fields: Record<string, unknown>) => FieldReader.ofMap(fields, 'plugins[0].parameters');

describe('FieldReader.oneOf / optionalOneOf', () => {
  test('an allowed value is returned; absent (or null) gives the default, or undefined for optionalOneOf', () => {
    expect(reader({ mode: 'b' }).oneOf('mode', ['a', 'b'], 'a')).toBe('b');
    expect(reader({}).oneOf('mode', ['a', 'b'], 'a')).toBe('a');
    expect(reader({ mode: null }).oneOf('mode', ['a', 'b'], 'b')).toBe('b');
    expect(reader({}).optionalOneOf('mode', ['a', 'b'])).toBeUndefined();
  });

  test('anything else is refused naming the field and every allowed value ("x or y" for two, "one of" beyond)', () => {
    expect(() => reader({ mode: 'c' }).oneOf('mode', ['a', 'b'], 'a')).toThrow(new ConfigError('plugins[0].parameters.mode', 'must be "a" or "b", got "c"'));
    expect(() => reader({ mode: 'd' }).optionalOneOf('mode', ['a', 'b', 'c'])).toThrow('plugins[0].parameters.mode: must be one of "a", "b", "c", got "d"');
    expect(() => reader({ mode: 1 }).oneOf('mode', ['a', 'b'], 'a')).toThrow('plugins[0].parameters.mode: must be "a" or "b", got 1');
    expect(() => reader({ mode: 'A' }).oneOf('mode', ['a', 'b'], 'a')).toThrow(/must be "a" or "b", got "A"/);
  });
});
