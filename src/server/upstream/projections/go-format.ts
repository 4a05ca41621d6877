/**
 * Go's text forms that libcalico-go's config processors put into v1 config values, written out
 * because Felix parses those strings and a one-character difference (`1e+06` vs `1000000`) is a
 * different byte string for every agent. Pure.
 *
 * - {@link parseGoDuration}: `time.ParseDuration` (what `metav1.Duration` unmarshals JSON with);
 * - {@link goDurationString}: `time.Duration.String()` (`1m30s`, `1.5s`, `100ms`, `0s`);
 * - {@link goFloatV}: `fmt.Sprintf("%v", float64)`, i.e. strconv's shortest `%g`: exponent form
 *   when the decimal exponent is below -4 or at least 6 (`1e+06`; not JSON's 1e21 threshold, which
 *   JavaScript's own number printing follows, so `String(x)` would be wrong).
 */

const NS: Record<string, bigint> = {
  ns: 1n,
  us: 1_000n,
  'µs': 1_000n, // U+00B5 micro sign
  'μs': 1_000n, // U+03BC Greek mu
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};

const MAX_INT64 = (1n << 63n) - 1n;

/**
 * `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`, in nanoseconds; undefined where
 * Go returns an error (no unit, unknown unit, empty, overflow). A fraction adds
 * `trunc(f * (unit / 10^digits))` computed in float64, exactly as Go does.
 */
export function parseGoDuration(text: string): bigint | undefined {
  let s = text;
  let neg = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0n;
  if (s === '') return undefined;
  let total = 0n;
  while (s !== '') {
    const m = /^(\d*)(?:\.(\d*))?/.exec(s);
    const whole = m?.[1] ?? '';
    const frac = m?.[2];
    if (whole === '' && (frac === undefined || frac === '')) return undefined;
    s = s.slice(m?.[0].length ?? 0);
    const unitMatch = /^[^\d.]+/.exec(s);
    if (unitMatch === null) return undefined; // missing unit
    const unitText = unitMatch[0];
    const unit = NS[unitText];
    if (unit === undefined) return undefined;
    s = s.slice(unitText.length);
    let v = BigInt(whole === '' ? '0' : whole) * unit;
    if (frac !== undefined && frac !== '') {
      // Go keeps the digits that fit in an int64 (about 18), we those that fit in a double (15):
      // a fraction written with more than 15 digits may come out one nanosecond apart.
      let f = 0;
      let scale = 1;
      for (const d of frac) {
        if (f > (Number.MAX_SAFE_INTEGER - 9) / 10) break;
        f = f * 10 + Number(d);
        scale *= 10;
      }
      v += BigInt(Math.trunc(f * (Number(unit) / scale)));
    }
    total += v;
    if (total > MAX_INT64) return undefined;
  }
  return neg ? -total : total;
}

/** Trailing-zero-free fraction of `v` with `prec` digits, as time.go's fmtFrac. */
function frac(v: bigint, prec: number): [string, bigint] {
  let digits = '';
  let print = false;
  let u = v;
  for (let i = 0; i < prec; i++) {
    const d = u % 10n;
    print = print || d !== 0n;
    if (print) digits = `${d}${digits}`;
    u /= 10n;
  }
  return [print ? `.${digits}` : '', u];
}

/** `time.Duration(ns).String()`. */
export function goDurationString(ns: bigint): string {
  if (ns === 0n) return '0s';
  const neg = ns < 0n;
  let u = neg ? -ns : ns;
  let out: string;
  if (u < 1_000_000_000n) {
    // Below a second: the largest of ns, µs, ms that keeps an integer part.
    let prec: number;
    let unit: string;
    if (u < 1_000n) {
      prec = 0;
      unit = 'ns';
    } else if (u < 1_000_000n) {
      prec = 3;
      unit = 'µs';
    } else {
      prec = 6;
      unit = 'ms';
    }
    const [f, rest] = frac(u, prec);
    out = `${rest}${f}${unit}`;
  } else {
    const [f, rest] = frac(u, 9);
    u = rest;
    out = `${u % 60n}${f}s`;
    u /= 60n;
    if (u > 0n) {
      out = `${u % 60n}m${out}`;
      u /= 60n;
      if (u > 0n) out = `${u}h${out}`;
    }
  }
  return neg ? `-${out}` : out;
}

/**
 * `fmt.Sprintf("%v", x)` for a float64: the shortest digits that round-trip (JavaScript's
 * `toExponential()` finds the same ones), printed `%e`-style when the decimal exponent is below
 * -4 or at least 6 (Go's rule for the shortest `%g`), plain otherwise.
 */
export function goFloatV(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? '+Inf' : '-Inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const sign = x < 0 ? '-' : '';
  const [mant = '', expText = '0'] = Math.abs(x).toExponential().split('e');
  const digits = mant.replace('.', '');
  const exp = Number(expText);
  if (exp < -4 || exp >= 6) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, '0');
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${e}`;
  }
  const dp = exp + 1; // digits before the decimal point
  if (dp <= 0) return `${sign}0.${'0'.repeat(-dp)}${digits}`;
  if (dp >= digits.length) return `${sign}${digits}${'0'.repeat(dp - digits.length)}`;
  return `${sign}${digits.slice(0, dp)}.${digits.slice(dp)}`;
}
