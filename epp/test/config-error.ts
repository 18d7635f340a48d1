import { ConfigError } from '../src/config';

/** The message a ConfigError carries, or a failure if `load` does not throw one. */
export function configErrorOf(load: () => unknown): string {
  try {
    load();
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
  throw new Error('expected a ConfigError');
}
