import { InvalidArgumentError } from '../../errors.js';
import type { KubeObject } from './types.js';
import { isRecord } from './projections/encode.js';

/**
 * Label and field selectors, evaluated on our side. A custom feed's selector never becomes a
 * second watch: each resource is watched once per replica and every feed filters the shared
 * stream. An object that stops matching becomes a deletion in that feed, exactly as the API
 * server's own selector watches behave (DELETED on exit, ADDED on entry).
 */

export type Matcher = (obj: KubeObject) => boolean;

type Requirement = (labels: Record<string, unknown>) => boolean;

/** Kubernetes label selector syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`. */
export function parseLabelSelector(text: string): Matcher {
  const reqs: Requirement[] = [];
  for (const part of splitTopLevel(text)) {
    const s = part.trim();
    if (s === '') continue;
    let m: RegExpMatchArray | null;
    if ((m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(s))) {
      const key = m[1] as string;
      const values = new Set((m[3] as string).split(',').map((v) => v.trim()));
      reqs.push(m[2] === 'in' ? (l) => has(l, key) && values.has(l[key] as string) : (l) => !has(l, key) || !values.has(l[key] as string));
    } else if ((m = /^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/.exec(s))) {
      const [, key, op, value] = m as unknown as [string, string, string, string];
      reqs.push(op === '!=' ? (l) => !has(l, key) || l[key] !== value : (l) => has(l, key) && l[key] === value);
    } else if ((m = /^!\s*([\w./-]+)$/.exec(s))) {
      const key = m[1] as string;
      reqs.push((l) => !has(l, key));
    } else if ((m = /^([\w./-]+)$/.exec(s))) {
      const key = m[1] as string;
      reqs.push((l) => has(l, key));
    } else {
      throw new InvalidArgumentError(`invalid label selector requirement ${JSON.stringify(s)} in ${JSON.stringify(text)}`);
    }
  }
  return (obj) => {
    // Only a map of strings is labels; anything else (a broken API server) has none. The `in`
    // operator it used saw inherited names: `toString` or `constructor`, valid label keys,
    // matched every object.
    const raw: unknown = obj.metadata?.labels;
    const labels = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : {};
    return reqs.every((r) => r(labels));
  };
}

const has = (l: Record<string, unknown>, key: string): boolean => Object.hasOwn(l, key);

/** Field selectors: comma-separated `dotted.path=value` / `dotted.path!=value`. */
export function parseFieldSelector(text: string): Matcher {
  const reqs: ((obj: KubeObject) => boolean)[] = [];
  for (const part of text.split(',')) {
    const s = part.trim();
    if (s === '') continue;
    const m = /^([\w.]+)\s*(==|=|!=)\s*(.*)$/.exec(s);
    if (!m) throw new InvalidArgumentError(`invalid field selector requirement ${JSON.stringify(s)} in ${JSON.stringify(text)}`);
    const [, path, op, value] = m as unknown as [string, string, string, string];
    const segments = path.split('.');
    const get = (obj: KubeObject): string => {
      let cur: unknown = obj;
      for (const seg of segments) cur = isRecord(cur) ? cur[seg] : undefined;
      return cur === undefined || cur === null ? '' : String(cur);
    };
    reqs.push(op === '!=' ? (o) => get(o) !== value : (o) => get(o) === value);
  }
  return (obj) => reqs.every((r) => r(obj));
}

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}
