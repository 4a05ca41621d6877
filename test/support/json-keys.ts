/**
 * Duplicate keys in a JSON text. JSON.parse keeps the last of two equal keys (and a reviver sees
 * only the survivor), so a log line written `"stage":"a","stage":"b"` parses without complaint;
 * this scans the text itself, one key set per object level.
 */
export function duplicateKeys(text: string): string[] {
  const dups: string[] = [];
  // One entry per open container: an object's keys and whether a key comes next, or null for an array.
  const stack: ({ keys: Set<string>; expectKey: boolean } | null)[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack.at(-1);
      if (top?.expectKey === true) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) dups.push(key);
        top.keys.add(key);
        top.expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === '{') stack.push({ keys: new Set(), expectKey: true });
    else if (c === '[') stack.push(null);
    else if (c === '}' || c === ']') stack.pop();
    else if (c === ',') {
      const top = stack.at(-1);
      if (top) top.expectKey = true;
    }
    i++;
  }
  return dups;
}
