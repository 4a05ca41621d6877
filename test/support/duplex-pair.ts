/**
 * Two connected in-memory byte streams (what a TCP connection looks like to each end), for tests
 * that run a real HTTP upgrade and WebSocket over no socket at all: the client dials with
 * `dial: () => a` and the server side is handed `b` (`httpServer.emit('connection', b)`).
 *
 * Each end carries the few Socket methods http and ws call (timeouts, no-delay, keep-alive) as
 * no-ops. Writes are delivered on a later turn, as a socket would, never re-entrantly.
 */
import { Duplex } from 'node:stream';

export class MemorySocket extends Duplex {
  peer: MemorySocket | undefined;
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 0;
  readonly remoteFamily = 'IPv4';
  readonly encrypted = false;

  override _read(): void {
    // Data is pushed by the peer's _write.
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const peer = this.peer;
    // Bytes written after the peer went away are lost, as on a socket whose peer closed.
    if (peer === undefined || peer.destroyed) {
      cb();
      return;
    }
    // Taken at once, as the kernel takes a write (a later destroy must not lose it); delivered on
    // a later turn, in order (setImmediate is FIFO).
    setImmediate(() => {
      if (!peer.destroyed) peer.push(chunk);
    });
    cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    const peer = this.peer;
    setImmediate(() => {
      peer?.push(null);
      cb();
    });
  }

  /** Like a socket's close: the peer reads end-of-stream after the bytes already in flight. */
  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    const peer = this.peer;
    this.peer = undefined;
    if (peer !== undefined) {
      setImmediate(() => {
        if (!peer.destroyed && !peer.readableEnded) peer.push(null);
        peer.peer = undefined;
      });
    }
    cb(err);
  }

  setTimeout(): this {
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }
}

/** A connected pair: what one end writes, the other reads. */
export function duplexPair(): [MemorySocket, MemorySocket] {
  const a = new MemorySocket();
  const b = new MemorySocket();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
