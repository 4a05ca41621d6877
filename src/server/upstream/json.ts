/**
 * JSON parsing that keeps integers above 2^53 exact. IPAMBlock sequence numbers are UnixNano based
 * (≈1.78e18); a plain JSON.parse rounds them, so two different values could compare equal and
 * agents would get wrong numbers. Such integers become exact decimal strings, as the wire protocol
 * keeps every msgpack integer within ±(2^53 − 1) (PROTOCOL.md §3) and as JSON decoders in any
 * language read them safely; msgpack int64 was rejected because common JS decoders (and our own
 * strict one) refuse or round it. The scan runs only on text that has a 16-digit run at all,
 * which almost no object does.
 */
const LONG_DIGITS = /\d{16}/;

export function parseJson(text: string): unknown {
  return JSON.parse(LONG_DIGITS.test(text) ? quoteBigIntegers(text) : text);
}

function quoteBigIntegers(text: string): string {
  let out = '';
  let last = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) {
      inString = true;
      continue;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      let j = i + 1;
      while (j < text.length) {
        const d = text.charCodeAt(j);
        if ((d >= 0x30 && d <= 0x39) || d === 0x2e || d === 0x65 || d === 0x45 || d === 0x2b || d === 0x2d) j++;
        else break;
      }
      const token = text.slice(i, j);
      if (/^-?\d{16,}$/.test(token) && !Number.isSafeInteger(Number(token))) {
        out += text.slice(last, i) + '"' + token + '"';
        last = j;
      }
      i = j - 1;
    }
  }
  return last === 0 ? text : out + text.slice(last);
}
