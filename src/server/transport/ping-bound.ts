/**
 * The bound on WebSocket pings a peer may send while it reads nothing (the uWS transport; `ws`
 * keeps the same bound itself, `maxPendingAutoPongs`).
 *
 * uWS answers every ping by itself, appending the pong to what it holds for the socket. A peer
 * that sends pings and reads nothing grew that by every ping, up to maxBackpressure (~19 MiB per
 * socket by default), before anything of ours noticed. So pings are counted while uWS holds
 * unsent bytes, and the socket is cut past the bound.
 *
 * The count resets when a ping finds nothing held and at every drain: a drain means the peer
 * reads. A slow agent streaming a long snapshot keeps uWS's buffer topped up, never empty, and
 * pinging it once a second must not get it cut after a minute (counting only "nothing held" as a
 * reset did exactly that).
 */

/** Pings answered while the socket holds unsent bytes before it is cut: `ws`'s maxPendingAutoPongs default. */
export const MAX_PINGS_WHILE_BACKED = 60;

export class PingBound {
  /** Pings received while unsent bytes were held, since the last reset. */
  private count = 0;

  constructor(private readonly max = MAX_PINGS_WHILE_BACKED) {}

  /** A ping arrived with `bufferedBytes` unsent for the socket; true when the socket must be cut. */
  ping(bufferedBytes: number): boolean {
    if (bufferedBytes === 0) {
      this.count = 0;
      return false;
    }
    return ++this.count > this.max;
  }

  /** The socket drained: the peer reads. */
  drained(): void {
    this.count = 0;
  }
}
