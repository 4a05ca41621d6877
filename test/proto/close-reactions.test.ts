/**
 * What a client does after an ERROR and the close that follows (proto/closes.ts reactionToClose):
 * the ERROR decides, also when the connection dropped after it (1006) instead of closing with
 * the code the ERROR names.
 */
import { describe, expect, it } from 'vitest';
import { reactionToClose } from '../../proto/index.js';

describe('close reactions', () => {
  it('an ERROR followed by its own close code and by a dropped connection (1006) is reacted to the same way', () => {
    for (const [code, close, reaction] of [
      ['CATTAIL_SERVER_REPLICA_BEHIND', 4015, 'behind'],
      ['CATTAIL_SERVER_ENTRY_TOO_LARGE', 4003, 'reject'],
      ['CATTAIL_SERVER_UNAUTHORIZED', 4011, 'reject'],
      ['CATTAIL_SERVER_SHUTTING_DOWN', 4010, 'move'],
    ] as const) {
      expect(reactionToClose(code, close), code).toBe(reaction);
      expect(reactionToClose(code, 1006), `${code} then 1006`).toBe(reaction);
    }
  });

  it('without an ERROR, or with one it does not know, the close code decides', () => {
    expect(reactionToClose(undefined, 4015)).toBe('behind');
    expect(reactionToClose(undefined, 1006)).toBe('reconnect');
    expect(reactionToClose('CATTAIL_SOMETHING_NEW', 4011)).toBe('reject');
  });
});
