/**
 * Label and field selectors as the apiserver parses them (apimachinery `labels.Parse`,
 * `fields.ParseSelector`). Bad syntax is a 400, as on a real server.
 */
import { badRequest } from './status.js';

export type LabelRequirement =
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'exists' | '!exists'; key: string };

export type Labels = Readonly<Record<string, string>>;

/** Splits on commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '(') depth++;
    else if (c === ')') depth--;
    if (c === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

const KEY = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?\/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$/;
const VALUE = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?)?$/;

function checkKey(key: string, whole: string): string {
  if (!KEY.test(key)) throw badRequest(`unable to parse requirement: invalid label key "${key}" in selector "${whole}"`);
  return key;
}
function checkValue(v: string, whole: string): string {
  if (!VALUE.test(v) || v.length > 63) throw badRequest(`unable to parse requirement: invalid label value "${v}" in selector "${whole}"`);
  return v;
}

export function parseLabelSelector(s: string): LabelRequirement[] {
  const whole = s;
  const reqs: LabelRequirement[] = [];
  if (s.trim() === '') return reqs;
  for (const raw of splitTop(s)) {
    const part = raw.trim();
    if (part === '') throw badRequest(`found '', expected: identifier in selector "${whole}"`);
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^(\S+?)\s+(in|notin)\s*\((.*)\)$/))) {
      const values = (m[3] ?? '').split(',').map((v) => checkValue(v.trim(), whole));
      reqs.push({ op: m[2] as 'in' | 'notin', key: checkKey(m[1] ?? '', whole), values });
    } else if ((m = part.match(/^(\S+?)\s*(==|!=|=)\s*(\S*)$/))) {
      const key = checkKey(m[1] ?? '', whole);
      const value = checkValue(m[3] ?? '', whole);
      reqs.push({ op: m[2] === '!=' ? 'notin' : 'in', key, values: [value] });
    } else if (part.startsWith('!')) {
      reqs.push({ op: '!exists', key: checkKey(part.slice(1).trim(), whole) });
    } else {
      reqs.push({ op: 'exists', key: checkKey(part, whole) });
    }
  }
  return reqs;
}

export function matchLabels(reqs: readonly LabelRequirement[], labels: Labels): boolean {
  for (const r of reqs) {
    const v = labels[r.key];
    switch (r.op) {
      case 'in':
        if (v === undefined || !r.values.includes(v)) return false;
        break;
      case 'notin':
        // `!=` and `notin` match objects without the label, as in apimachinery.
        if (v !== undefined && r.values.includes(v)) return false;
        break;
      case 'exists':
        if (v === undefined) return false;
        break;
      case '!exists':
        if (v !== undefined) return false;
        break;
    }
  }
  return true;
}

export interface FieldRequirement {
  field: 'metadata.name' | 'metadata.namespace' | 'spec.nodeName';
  value: string;
  negate: boolean;
}

/** The fields an object exposes to field selectors. `nodeName` only for pods. */
export interface Fields {
  name: string;
  namespace: string;
  nodeName?: string;
}

export function parseFieldSelector(s: string, allowNodeName: boolean): FieldRequirement[] {
  const out: FieldRequirement[] = [];
  if (s.trim() === '') return out;
  for (const raw of s.split(',')) {
    const m = raw.trim().match(/^([a-zA-Z.]+)\s*(==|!=|=)\s*(.*)$/);
    if (!m) throw badRequest(`invalid selector: '${s}'; can't understand '${raw}'`);
    const field = m[1] ?? '';
    if (field !== 'metadata.name' && field !== 'metadata.namespace' && !(field === 'spec.nodeName' && allowNodeName)) {
      throw badRequest(`field label not supported: ${field}`);
    }
    out.push({ field, value: m[3] ?? '', negate: m[2] === '!=' });
  }
  return out;
}

export function matchFields(reqs: readonly FieldRequirement[], f: Fields): boolean {
  for (const r of reqs) {
    const v = r.field === 'metadata.name' ? f.name : r.field === 'metadata.namespace' ? f.namespace : (f.nodeName ?? '');
    if ((v === r.value) === r.negate) return false;
  }
  return true;
}
