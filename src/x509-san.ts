/**
 * The URI SANs of a certificate as Node shows them (`PeerCertificate.subjectaltname`,
 * `X509Certificate.subjectAltName`): "DNS:a, URI:spiffe://…, IP Address:…". Node quotes a value
 * holding a separator, a quote or a control character as a JSON string and escapes the comma in
 * it (`URI:"spiffe://td/ns/a\u002cb"`), since CVE-2021-44532: splitting on commas alone read
 * such a value with its quotes and escapes, so it never matched an allow-list entry or a node
 * prefix. This is the same split as Node's own checkServerIdentity (lib/tls.js,
 * splitEscapedAltNames): entries end at ", " outside a quoted string, and quoted parts are JSON.
 * An entry that does not parse yields no SAN (it then matches nothing: refused, never widened).
 */

/** A JSON string at the start of the text (the grammar Node quotes with; control characters are escaped in it). */
// eslint-disable-next-line no-control-regex -- JSON forbids raw control characters in a string: the pattern must exclude them.
const JSON_STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;

/**
 * Splits Node's altname text into entries ("URI:…", "DNS:…"), unquoting quoted values; undefined
 * when malformed. Linear in the text: it is read from a client certificate before the client is
 * authorized, and a self-signed one may carry tens of thousands of entries (~230,000 characters);
 * searching for the next quote from every entry, and matching quoted values on a copy of the rest
 * of the text, was quadratic (seconds of the event loop per handshake).
 */
export function splitAltNames(text: string): string[] | undefined {
  const out: string[] = [];
  let token = '';
  let at = 0;
  // The next quote at or after `at`, found again only once `at` has passed it (-1: none left).
  let quote = text.indexOf('"');
  while (at < text.length) {
    const sep = text.indexOf(', ', at);
    if (quote !== -1 && quote < at) quote = text.indexOf('"', at);
    if (quote !== -1 && (sep === -1 || quote < sep)) {
      token += text.slice(at, quote);
      JSON_STRING.lastIndex = quote;
      const m = JSON_STRING.exec(text);
      if (m === null) return undefined;
      token += JSON.parse(m[0]) as string;
      at = quote + m[0].length;
    } else if (sep !== -1) {
      token += text.slice(at, sep);
      out.push(token);
      token = '';
      at = sep + 2;
    } else {
      token += text.slice(at);
      at = text.length;
    }
  }
  if (token !== '' || out.length > 0) out.push(token);
  return out;
}

/** The URI SANs in Node's altname text (none when it is absent or malformed). */
export function uriSansOf(subjectaltname: string | undefined): string[] {
  const entries = splitAltNames(subjectaltname ?? '') ?? [];
  return entries.filter((e) => e.startsWith('URI:')).map((e) => e.slice(4));
}
