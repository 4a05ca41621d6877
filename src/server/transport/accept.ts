/**
 * The server's answers at the upgrade, the same for every transport: admission through the
 * governor (503 + Retry-After before any WebSocket handshake), and the subprotocol check.
 *
 * An agent that does not offer `cattail.v1` still completes the upgrade and is then closed with
 * 4001 after an ERROR, so it sees a coded close rather than a bare HTTP error (PROTOCOL.md §1.1).
 * On a mutual-TLS port an agent whose certificate is refused gets ERROR + 4011 the same way.
 */
import type { Clock } from '../../clock.js';
import type { ServerMetrics } from '../ops/metrics.js';
import { closeCodeOf } from '../../../proto/index.js';
import { SUBPROTOCOL, encodeMessage } from './framing.js';
import type { Governor } from './governor.js';
import type { AcceptHooks, AgentSocket, PeerInfo } from './seam.js';

/**
 * How long a socket refused after the upgrade (certificate, subprotocol) has to complete the
 * closing handshake before it is cut, in ms. It never becomes a Connection, so the sweep's close
 * grace does not reach it; left to the WebSocket library's own close timeout (30 s with `ws`),
 * clients that ignore the close frame held a TCP slot each that long, uncounted by admission:
 * a few hundred a second kept the port's connection cap full (a review).
 */
export const REFUSED_CLOSE_GRACE_MS = 2_000;

export interface AcceptOptions {
  readonly clock: Clock;
  readonly governor: Governor;
  readonly metrics: ServerMetrics;
  readonly openConnections: () => number;
  /**
   * The TLS client-certificate check (tls/listener.ts), on a port with a client CA: a refusal
   * (already counted and logged) becomes ERROR CATTAIL_SERVER_UNAUTHORIZED + close 4011.
   */
  readonly authorize?: (peer: PeerInfo) => { readonly reason: string; readonly message: string } | undefined;
  /** Called with each accepted socket that speaks the cattail subprotocol and passed authorize. */
  readonly onAgent: (socket: AgentSocket) => void;
}

export function acceptHooks(o: AcceptOptions): AcceptHooks {
  return {
    admit: () => o.governor.admit(o.openConnections()),
    refused: (reason) => o.metrics.connectionsRefused.inc({ reason }),
    accept: (socket) => {
      // Before the subprotocol answer: a refused agent learns nothing about this server.
      const unauthorized = o.authorize?.(socket.peer);
      if (unauthorized !== undefined) {
        socket.write(encodeMessage({ type: 'error', code: 'CATTAIL_SERVER_UNAUTHORIZED', message: unauthorized.message }));
        socket.close(closeCodeOf('CATTAIL_SERVER_UNAUTHORIZED'), `unauthorized: ${unauthorized.reason}`);
        cutLater(o.clock, socket);
        return;
      }
      if (socket.peer.protocol !== SUBPROTOCOL) {
        o.metrics.connectionsRefused.inc({ reason: 'subprotocol' });
        const message = `this server speaks WebSocket subprotocol ${SUBPROTOCOL} only`;
        socket.write(encodeMessage({ type: 'error', code: 'CATTAIL_SERVER_BAD_SUBPROTOCOL', message }));
        socket.close(closeCodeOf('CATTAIL_SERVER_BAD_SUBPROTOCOL'), `unsupported subprotocol; use ${SUBPROTOCOL}`);
        cutLater(o.clock, socket);
        return;
      }
      o.onAgent(socket);
    },
  };
}

/** Terminates a refused socket REFUSED_CLOSE_GRACE_MS after its close frame (a no-op once it is gone). */
function cutLater(clock: Clock, socket: AgentSocket): void {
  clock.setTimeout(() => {
    try {
      socket.terminate();
    } catch {
      // Already gone.
    }
  }, REFUSED_CLOSE_GRACE_MS).unref();
}
