/**
 * The log destination's bound (src/log.ts LOG_BUFFER_MAX_BYTES): when stderr stops taking bytes,
 * lines past the bound are dropped and counted instead of growing the process's memory. Here the
 * "stderr" is a FIFO nobody reads: the kernel takes its 64 KiB, then every write would block.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger, droppedLogBytes, stderrDestination } from '../src/log.js';

describe('log destination - a stalled stderr', () => {
  it.skipIf(process.platform !== 'linux')('drops and counts lines past its bound instead of buffering them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cattail-log-'));
    const fifo = join(dir, 'stderr');
    execFileSync('mkfifo', [fifo]);
    // A reader that never reads, so the writer can open the FIFO and then fills it.
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const dest = stderrDestination(256 * 1024, fifo);
      await new Promise<void>((resolve) => (dest as unknown as { once(e: string, f: () => void): void }).once('ready', resolve));
      const log = createLogger('info', 'test', dest);
      const before = droppedLogBytes();
      const line = 'x'.repeat(1_000);
      for (let i = 0; i < 2_000; i++) log.info({ i }, line); // ~2 MB against 64 KiB of pipe and 256 KiB of buffer
      await new Promise((r) => setTimeout(r, 50));
      const dropped = droppedLogBytes() - before;
      expect(dropped).toBeGreaterThan(1_000_000);
      expect(dropped).toBeLessThan(2_200_000);
      // Done with it: writes still pending fail once it is destroyed, which is expected here.
      const d = dest as unknown as { on(e: string, f: () => void): void; destroy(): void };
      d.on('error', () => undefined);
      d.destroy();
    } finally {
      closeSync(reader);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
