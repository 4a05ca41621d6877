import { describe, expect, it } from 'vitest';
import { CattailError, ConfigError, ERROR_CODES, InvalidArgumentError, toCattailError } from '../src/errors.js';

describe('errors', () => {
  it('carries a stable code, keeps the cause and brands itself', () => {
    const cause = new Error('root');
    const e = new CattailError('CATTAIL_INTERNAL', 'broke', { cause, details: { feed: 'felix' } });
    expect(e.code).toBe('CATTAIL_INTERNAL');
    expect(e.cause).toBe(cause);
    expect(e.details).toEqual({ feed: 'felix' });
    expect(e.name).toBe('CattailError');
    expect(CattailError.is(e)).toBe(true);
    expect(CattailError.is(new Error('x'))).toBe(false);
    // A structurally branded object from "another copy" of the library is recognised too.
    expect(CattailError.is({ [Symbol.for('cattail.error')]: true })).toBe(true);
  });

  it('subclasses keep their names and codes', () => {
    expect(new InvalidArgumentError('x').code).toBe('CATTAIL_INVALID_ARGUMENT');
    const c = new ConfigError('CATTAIL_CONFIG_INVALID_VALUE', 'bad');
    expect(c.name).toBe('ConfigError');
    expect(c.exitCode).toBe(2);
  });

  it('wraps foreign errors without losing them', () => {
    const raw = new TypeError('boom');
    const e = toCattailError(raw);
    expect(e.code).toBe('CATTAIL_INTERNAL');
    expect(e.cause).toBe(raw);
    const same = new InvalidArgumentError('y');
    expect(toCattailError(same)).toBe(same);
  });

  it('documents every code with a sentence and an exit status', () => {
    for (const [code, entry] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^CATTAIL_[A-Z0-9_]+$/);
      expect(entry.text.length).toBeGreaterThan(10);
      expect(Number.isInteger(entry.exit)).toBe(true);
    }
  });
});
