/**
 * A loopback TCP proxy in front of a real server, to make network faults the server cannot make
 * itself: `cut()` drops every connection (a blip: no close frame, no GOODBYE), `blackhole()` stops
 * forwarding in both directions while keeping the sockets open.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private readonly pairs = new Set<[Socket, Socket]>();
  private holes = false;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<TcpProxy> {
    const ref: { proxy?: TcpProxy } = {};
    const server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      const pair: [Socket, Socket] = [client, upstream];
      ref.proxy!.pairs.add(pair);
      const end = (): void => {
        client.destroy();
        upstream.destroy();
        ref.proxy!.pairs.delete(pair);
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
      client.on('data', (d: Buffer) => {
        if (!ref.proxy!.holes) upstream.write(d);
      });
      upstream.on('data', (d: Buffer) => {
        if (!ref.proxy!.holes) client.write(d);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    ref.proxy = new TcpProxy(server, (server.address() as AddressInfo).port);
    return ref.proxy;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  get connections(): number {
    return this.pairs.size;
  }

  cut(): void {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  blackhole(on = true): void {
    this.holes = on;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
