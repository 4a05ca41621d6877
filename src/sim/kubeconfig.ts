/**
 * The kubeconfig the simulator writes for its clients. Plain HTTP needs
 * `insecure-skip-tls-verify: true`: @kubernetes/client-node refuses an http:// server otherwise
 * ("HTTP protocol is not allowed when skipTLSVerify is not set or false").
 *
 * Written atomically (temp file in the same directory, then rename) so a client polling for the
 * file never reads half of it.
 */
import { rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { stringify } from 'yaml';
import { CattailError } from '../errors.js';

/** With HTTPS the CA is embedded (`certificate-authority-data`); with auth on, the current token. */
export interface KubeconfigAuth {
  caPem?: string;
  token?: string;
}

function kubeconfigYaml(server: string, name = 'cattail-sim', auth: KubeconfigAuth = {}): string {
  const cluster: Record<string, unknown> = { server };
  if (auth.caPem !== undefined) cluster['certificate-authority-data'] = Buffer.from(auth.caPem).toString('base64');
  else cluster['insecure-skip-tls-verify'] = server.startsWith('http://');
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster }],
    users: [{ name, user: { token: auth.token ?? 'cattail-sim' } }],
    contexts: [{ name, context: { cluster: name, user: name, namespace: 'default' } }],
    'current-context': name,
  });
}

export async function writeKubeconfig(path: string, server: string, auth: KubeconfigAuth = {}): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  try {
    await writeFile(tmp, kubeconfigYaml(server, 'cattail-sim', auth), { mode: 0o600 });
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new CattailError('CATTAIL_SIM_KUBECONFIG_WRITE_FAILED', `cannot write kubeconfig ${path}: ${(err as Error).message}`, { cause: err, details: { path } });
  }
}
