/**
 * The plain-TCP floor: a Node `net` server writing pre-framed bytes to every socket, with nothing
 * of Cattail in between (no protocol state, no cursors, no store). What Cattail costs is reported
 * as a ratio to this, measured in the same run (bench/fanout.ts, and `cattail bench`'s churn
 * scenario), because absolute times on shared machines vary by a third between runs.
 */
import { type Socket, createServer } from 'node:net';
import { encodeDelta, encodeMessage } from '../server/transport/framing.js';

export interface NetServer {
  readonly port: number;
  readonly sockets: Socket[];
  close(): Promise<void>;
}

/** A `net` server on `host`, port 0, keeping every accepted socket (Nagle off, as the fan-out). */
export async function netServer(onSocket: (s: Socket) => void, host = '127.0.0.1'): Promise<NetServer> {
  const sockets: Socket[] = [];
  const srv = createServer({ noDelay: true }, (s) => {
    s.on('error', () => undefined);
    sockets.push(s);
    onSocket(s);
  });
  await new Promise<void>((r) => srv.listen({ port: 0, host, backlog: 4096 }, r));
  const port = (srv.address() as { port: number }).port;
  return {
    port,
    sockets,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => srv.close(() => r()));
    },
  };
}

/** Size of the STATUS every floor frame carries, as a fan-out flush does (40-byte token, 8-byte digest: a valid STATUS). */
function statusFrame(revision: number): Buffer {
  return encodeMessage({ type: 'status', feedId: 0, revision, status: 'in-sync', stale: false, watermarks: { pods: String(revision) }, token: Buffer.alloc(40), digest: Buffer.alloc(8) });
}

/**
 * One change as the floor sends it: a real DELTA (one entry, uncompressed) and a STATUS in one
 * buffer, `totalBytes` long when that is more than the frames need (the entry's value is padded),
 * so the floor writes the same bytes per delivery as the Cattail run it is compared with.
 */
export function floorFrame(revision: number, totalBytes: number, key = '/floor/entry'): Buffer {
  const build = (valueBytes: number): Buffer =>
    Buffer.concat([...encodeDelta(0, revision - 1, revision, [[key, Buffer.alloc(valueBytes, 0x61)]], [], 'none', 16 * 1024 * 1024, Infinity), statusFrame(revision)]);
  const bare = build(0);
  return bare.length >= totalBytes ? bare : build(totalBytes - bare.length);
}
