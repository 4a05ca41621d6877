/**
 * The kernel's TCP counters that say whether a loopback benchmark measured Cattail or the kernel's
 * memory pressure (Linux /proc/net/netstat and /proc/net/snmp, per network namespace).
 *
 * Why: on loopback the receive path runs in the sender's context, so the kernel's work for a
 * receiver that cannot keep up lands in the server's system time. In the fan-out benchmark's cold
 * start (1,000 agents reading 4.6 MB each from one load-client core) that is thousands of tail
 * loss probes, retransmission timeouts and, past `net.ipv4.tcp_mem`'s pressure mark, pruned receive
 * queues and dropped segments. It moved the `net` floor's cold-start CPU between 0.9 and 3.8 s
 * from run to run while its user time stayed put: a run with many timeouts or prunes compares the
 * kernel's luck, not the targets.
 */
import { readFileSync } from 'node:fs';

/** Counters read, by the names the kernel gives them (`nstat` shows the same). */
export const TCP_COUNTERS = ['TCPMemoryPressures', 'PruneCalled', 'TCPRcvCollapsed', 'TCPRcvQDrop', 'RetransSegs', 'TCPSynRetrans', 'TCPTimeouts', 'TCPLossProbes', 'ListenOverflows', 'TCPZeroWindowDrop', 'TCPWantZeroWindowAdv'] as const;
export type TcpCounters = Record<(typeof TCP_COUNTERS)[number], number>;

/** Parses the header/value line pairs of /proc/net/netstat or /proc/net/snmp. */
export function parseProcNet(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i + 1 < lines.length; i += 2) {
    const names = (lines[i] as string).trim().split(/\s+/);
    const values = (lines[i + 1] as string).trim().split(/\s+/);
    if (names[0] !== values[0]) continue;
    for (let j = 1; j < names.length; j++) out.set(names[j] as string, Number(values[j]));
  }
  return out;
}

/** The counters now, or undefined where /proc/net is not there (not Linux). */
export function readTcpCounters(): TcpCounters | undefined {
  let all: Map<string, number>;
  try {
    all = new Map([...parseProcNet(readFileSync('/proc/net/netstat', 'utf8')), ...parseProcNet(readFileSync('/proc/net/snmp', 'utf8'))]);
  } catch {
    return undefined;
  }
  return Object.fromEntries(TCP_COUNTERS.map((k) => [k, all.get(k) ?? 0])) as TcpCounters;
}

/** What moved between two readings (undefined when either is). */
export function tcpCountersSince(before: TcpCounters | undefined, after: TcpCounters | undefined): TcpCounters | undefined {
  if (before === undefined || after === undefined) return undefined;
  return Object.fromEntries(TCP_COUNTERS.map((k) => [k, after[k] - before[k]])) as TcpCounters;
}
