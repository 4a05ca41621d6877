/**
 * The kernel counters the fan-out benchmark records beside each cold start (src/bench/tcp-counters.ts):
 * parsed from the header/value line pairs of /proc/net/netstat and /proc/net/snmp.
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { parseProcNet, readTcpCounters, tcpCountersSince, TCP_COUNTERS } from '../../src/bench/tcp-counters.js';

const NETSTAT = [
  'TcpExt: SyncookiesSent PruneCalled TCPLossProbes TCPMemoryPressures',
  'TcpExt: 0 17 6343 2',
  'IpExt: InNoRoutes InTruncatedPkts',
  'IpExt: 5 0',
  '',
].join('\n');

describe('bench TCP counters', () => {
  it('reads each name from its header line and the value below it, section by section', () => {
    const m = parseProcNet(NETSTAT);
    expect(m.get('PruneCalled')).toBe(17);
    expect(m.get('TCPLossProbes')).toBe(6343);
    expect(m.get('TCPMemoryPressures')).toBe(2);
    expect(m.get('InNoRoutes')).toBe(5);
    expect(m.has('TcpExt:')).toBe(false);
  });

  it('skips a pair whose section names differ (a torn read) instead of misreading it', () => {
    const m = parseProcNet('TcpExt: PruneCalled\nIpExt: 9\n');
    expect(m.size).toBe(0);
  });

  it('subtracts two readings counter by counter, and has nothing to say without both', () => {
    const a = Object.fromEntries(TCP_COUNTERS.map((k, i) => [k, i])) as Parameters<typeof tcpCountersSince>[0];
    const b = Object.fromEntries(TCP_COUNTERS.map((k, i) => [k, 3 * i + 1])) as Parameters<typeof tcpCountersSince>[0];
    const d = tcpCountersSince(a, b);
    for (const [i, k] of TCP_COUNTERS.entries()) expect(d?.[k]).toBe(2 * i + 1);
    expect(tcpCountersSince(undefined, b)).toBeUndefined();
  });

  it.runIf(existsSync('/proc/net/netstat'))('reads this machine\'s counters: the long-standing ones by name, every one as a number', () => {
    const c = readTcpCounters();
    expect(c).toBeDefined();
    for (const k of TCP_COUNTERS) expect(Number.isInteger(c?.[k])).toBe(true);
    // Absent names read as 0 (newer kernels add counters); these are in every kernel CI may run.
    const names = new Map([...parseProcNet(readFileSync('/proc/net/netstat', 'utf8')), ...parseProcNet(readFileSync('/proc/net/snmp', 'utf8'))]);
    for (const k of ['TCPMemoryPressures', 'PruneCalled', 'RetransSegs', 'TCPLossProbes', 'TCPTimeouts']) expect(names.has(k), k).toBe(true);
  });
});
