/**
 * What frames built for one agent alone (resume and rebase deltas, catch-ups, repairs) hold of the
 * process's memory while sockets have not sent them: each frame counted once, however many
 * sockets it was written to (a catch-up encoded once for agents behind together is one frame).
 *
 * Why a process-wide bound besides each agent's `maxClientBytes`: that one bounds what one agent
 * pins, not what many do. Shared frames (deltas of the flush, snapshot chunks) cost the same
 * however many agents read them; frames built for one agent do not. An agent that presents an
 * old token (its own, replayed, or one with another revision: tokens are not signed, and need
 * not be) gets a delta encoded for it alone, up to half its budget, and by not reading keeps it:
 * ~130 such connections held a 2 GiB replica's memory (ops review). With the bound, a catch-up
 * that does not fit is answered with a snapshot, whose chunks are shared, instead; no agent is
 * closed for it.
 *
 * Counting: `add` when a frame is handed to a socket, `release` when that socket's write of it
 * completed or the connection closed (the Connection keeps what it has not released, since a
 * destroyed socket does not call every write's callback on every transport).
 */
/**
 * Whether a catch-up of `bytes` (a resume's, a rebase's, a service turn's or a GOODBYE's) may be
 * built for one agent: at most half its own budget, since more would only get it closed with 4008,
 * and within what the process holds of such frames (`own`; a refusal is counted there).
 */
export function catchUpFits(bytes: number, maxClientBytes: number, own: OwnFrames | undefined): boolean {
  return bytes <= maxClientBytes / 2 && (own?.admits(bytes) ?? true);
}

export class OwnFrames {
  /** Frame → the number of sockets holding it unsent. */
  private readonly refs = new Map<Buffer, number>();
  /** Bytes of the frames in `refs`, each once. */
  heldBytes = 0;
  /** Catch-ups answered with a snapshot because they did not fit (for the metric). */
  refused = 0;

  constructor(
    /** The bound, in bytes; Infinity: counted, never enforced. */
    readonly maxBytes: number,
  ) {}

  /**
   * Whether `bytes` more (an estimate of a catch-up not yet encoded, or the frames of one that is
   * and that this process does not hold yet) fit under the bound. Counts a refusal when not.
   */
  admits(bytes: number): boolean {
    if (this.heldBytes + bytes <= this.maxBytes) return true;
    this.refused++;
    return false;
  }

  /** The bytes of `frames` not held yet (what writing them would add). */
  newBytes(frames: readonly Buffer[]): number {
    let n = 0;
    for (const f of frames) if (!this.refs.has(f)) n += f.length;
    return n;
  }

  add(frame: Buffer): void {
    const r = this.refs.get(frame);
    if (r === undefined) {
      this.refs.set(frame, 1);
      this.heldBytes += frame.length;
    } else this.refs.set(frame, r + 1);
  }

  release(frame: Buffer): void {
    const r = this.refs.get(frame);
    if (r === undefined) return;
    if (r > 1) {
      this.refs.set(frame, r - 1);
      return;
    }
    this.refs.delete(frame);
    this.heldBytes -= frame.length;
  }
}
