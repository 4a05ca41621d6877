import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLOSE_CODES, CLOSE_OF_ERROR, HEADER_BYTES, MIN_CLIENT_MAX_FRAME_BYTES, MessageType, closeCodeOf, type ClosingErrorCode } from '../../proto/index.js';
import { ERROR_CODES } from '../../src/errors.js';

// PROTOCOL.md is the contract; these tests keep the constants and the document from drifting.
const doc = readFileSync(join(import.meta.dirname, '..', '..', 'proto', 'PROTOCOL.md'), 'utf8');

function tableRows(heading: string): string[][] {
  const start = doc.indexOf(heading);
  expect(start).toBeGreaterThanOrEqual(0);
  const rows: string[][] = [];
  for (const line of doc.slice(start).split('\n').slice(1)) {
    if (line.startsWith('#')) break;
    if (!line.startsWith('|') || line.startsWith('|---')) continue;
    rows.push(line.split('|').slice(1, -1).map((c) => c.trim()));
  }
  return rows.slice(1);
}

describe('proto constants match PROTOCOL.md', () => {
  it('close codes (section 1.3)', () => {
    const docCodes = tableRows('### 1.3 Close codes').map(([code, sentBy]) => [Number(code), sentBy]);
    const ours = Object.values(CLOSE_CODES).map((c) => [c.code, c.sentBy]);
    expect(ours).toEqual(docCodes);
  });

  it("each close code's client reaction (section 1.3) is the one the client acts on", () => {
    const reactionText = new Map(tableRows('### 1.3 Close codes').map((r) => [Number(r[0]), r[3] ?? '']));
    const says = { reject: /do not retry/, move: /reconnect elsewhere/, resync: /resync/, reconnect: /reconnect with backoff/, none: /reconnect only if/, behind: /keep the state/ } as const;
    for (const c of Object.values(CLOSE_CODES)) {
      if (c.sentBy === 'client') continue; // the reaction column is the client's; a client's own closes have none
      expect(reactionText.get(c.code), `close ${c.code} (${c.reaction})`).toMatch(says[c.reaction]);
    }
  });

  it('message types (section 4)', () => {
    const docTypes = tableRows('## 4. Messages').map(([type, name]) => [name, Number(type)]);
    expect(Object.entries(MessageType)).toEqual(docTypes);
  });

  it('smallest maxFrameBytes a client may announce (section 2.2)', () => {
    expect(doc).toContain(`MUST be at least **${MIN_CLIENT_MAX_FRAME_BYTES.toLocaleString('en-US')}**`);
  });

  it('header size (section 2.1)', () => {
    expect(doc).toContain(`a ${HEADER_BYTES}-byte header`);
  });

  it('every closing error code is in ERROR_CODES, and a text that says which close follows says the table\'s', () => {
    for (const code of Object.keys(CLOSE_OF_ERROR) as ClosingErrorCode[]) {
      const text = ERROR_CODES[code].text;
      for (const m of text.matchAll(/\bclose(?:s with)? (\d{4})\b/g)) expect(Number(m[1]), `${code}: ${text}`).toBe(closeCodeOf(code));
    }
    // Every decode error ends a connection, so every one is in the table.
    const protoCodes = Object.keys(ERROR_CODES).filter((c) => c.startsWith('CATTAIL_PROTO_'));
    expect(protoCodes.sort()).toEqual(Object.keys(CLOSE_OF_ERROR).filter((c) => c.startsWith('CATTAIL_PROTO_')).sort());
  });
});
