/**
 * The kernel's TCP counters that say whether a loopback benchmark measured Cattail or the kernel's
 * memory pressure (Linux /proc/net/netstat and /proc/net/snmp, per network namespace).
 *
 * Why: on loopback the receivers' buffers are charged to the same machine-wide TCP memory as the
 * senders'. A cold start of 1,000 agents reading 4.6 MB each can pass `net.ipv4.tcp_mem`'s pressure
 * threshold; the kernel then prunes and collapses receive queues and drops segments, and that work
 * lands in the sender's system time (loopback runs the receive path in the sending context). It
 * moved the `net` floor's cold-start CPU between 0.9 and 3.7 s from run to run while nothing else
 * changed: a run that shows pressure compares the kernel's luck, not the targets.
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
