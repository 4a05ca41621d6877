import { describe, expect, it } from 'vitest';
import { nodeOfKey } from '../../../src/server/scoping/node-of-key.js';
import { hostConfigKey, hostEndpointKey, ipPoolKey, profileRulesKey, resourceKey, wireguardKey, workloadEndpointKey } from '../../../src/server/upstream/projections/calico-keys.js';

describe('nodeOfKey', () => {
  it('finds the node in the keys the projections produce for node-bound objects', () => {
    expect(nodeOfKey(workloadEndpointKey('worker-1', 'demo', 'web-1'))).toBe('worker-1');
    expect(nodeOfKey(hostEndpointKey('worker-2', 'eth0/a'))).toBe('worker-2');
    expect(nodeOfKey(hostConfigKey('worker-3', 'IpInIpTunnelAddr'))).toBe('worker-3');
    expect(nodeOfKey(wireguardKey('worker-4'))).toBe('worker-4');
    expect(nodeOfKey(resourceKey('nodes', 'worker-5'))).toBe('worker-5');
  });

  it('treats every other key as cluster-wide', () => {
    expect(nodeOfKey(profileRulesKey('kns.demo'))).toBeUndefined();
    expect(nodeOfKey(ipPoolKey('10.0.0.0/16'))).toBeUndefined();
    expect(nodeOfKey(resourceKey('caliconodestatuses', 'status-1'))).toBeUndefined();
    expect(nodeOfKey('/calico/v1/host/')).toBeUndefined();
  });
});
