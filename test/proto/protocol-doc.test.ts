import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLOSE_CODE_OF, CLOSE_CODES, HEADER_BYTES, MIN_CLIENT_MAX_FRAME_BYTES, MessageType } from '../../proto/index.js';
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

  it('every protocol error code is in ERROR_CODES and names its close code', () => {
    for (const [code, close] of Object.entries(CLOSE_CODE_OF)) {
      expect(ERROR_CODES[code as keyof typeof ERROR_CODES].text).toContain(`close ${close}`);
    }
    const protoCodes = Object.keys(ERROR_CODES).filter((c) => c.startsWith('CATTAIL_PROTO_'));
    expect(protoCodes.sort()).toEqual(Object.keys(CLOSE_CODE_OF).sort());
  });
});
