/**
 * A round-robin TCP proxy on loopback, as an L4 load balancer in front of two apiservers: each
 * new connection goes to the next backend. Balancing is per connection, not per request: a
 * keep-alive client stays on one replica until its connection closes, which is also how a
 * client in a real HA cluster gets "sent back in time" only on reconnect.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export class RoundRobinProxy {
  private next = 0;
  private readonly sockets = new Set<Socket>();
  /** Connections handed to each backend, by index. */
  readonly connections: number[];

  private constructor(
    private readonly server: Server,
    private readonly backends: readonly number[],
  ) {
    this.connections = backends.map(() => 0);
  }

  static async start(backends: readonly number[], port = 0): Promise<RoundRobinProxy> {
    const server = createServer();
    const p = new RoundRobinProxy(server, backends);
    server.on('connection', (s) => p.onConnection(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return p;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  private onConnection(client: Socket): void {
    const i = this.next++ % this.backends.length;
    this.connections[i] = (this.connections[i] as number) + 1;
    const up = connect(this.backends[i] as number, '127.0.0.1');
    for (const s of [client, up]) {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    }
    // Either side failing or closing ends both: a reset upstream becomes a reset for the client.
    const kill = (err?: Error): void => {
      if (err && 'code' in err && err.code === 'ECONNRESET') {
        client.resetAndDestroy();
        up.destroy();
        return;
      }
      client.destroy();
      up.destroy();
    };
    client.on('error', kill);
    up.on('error', kill);
    client.pipe(up);
    up.pipe(client);
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
