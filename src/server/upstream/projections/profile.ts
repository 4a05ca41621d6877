import type { KubeObject } from '../types.js';
import { sortedRecord, stringRecord } from './encode.js';

/**
 * Namespaces and ServiceAccounts become Calico profiles, as libcalico-go's KDD conversion does:
 * `kns.<ns>` (allow-all rules, labels applied to member endpoints as `pcns.<key>`) and
 * `ksa.<ns>.<sa>` (no rules, labels as `pcsa.<key>`). Anything else on the object is irrelevant
 * to policy, so namespace status flips and token-secret churn never reach agents.
 */
export interface Profile {
  name: string;
  labelsToApply: Record<string, string>;
  ingress?: { action: 'Allow' }[];
  egress?: { action: 'Allow' }[];
}

export function projectNamespace(ns: KubeObject): Profile {
  const name = ns.metadata?.name ?? '';
  const labels = Object.entries(stringRecord(ns.metadata?.labels)).map(([k, v]): [string, string] => [`pcns.${k}`, v]);
  labels.push(['pcns.projectcalico.org/name', name]);
  return { name: `kns.${name}`, labelsToApply: sortedRecord(labels), ingress: [{ action: 'Allow' }], egress: [{ action: 'Allow' }] };
}

export function projectServiceAccount(sa: KubeObject): Profile {
  const name = sa.metadata?.name ?? '';
  const ns = sa.metadata?.namespace ?? '';
  const labels = Object.entries(stringRecord(sa.metadata?.labels)).map(([k, v]): [string, string] => [`pcsa.${k}`, v]);
  labels.push(['pcsa.projectcalico.org/name', name]);
  return { name: `ksa.${ns}.${name}`, labelsToApply: sortedRecord(labels) };
}
