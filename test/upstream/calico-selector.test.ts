/**
 * The Calico selector parser and printer against libcalico-go's rules (lib/selector/tokenizer,
 * lib/selector/parser: grammar, precedence, quoting, set order, the canonical printed form).
 */
import { describe, expect, it } from 'vitest';
import { normalizeSelector, parseSelector, prefixSelector, SelectorSyntaxError } from '../../src/server/upstream/projections/calico-selector.js';

describe('Calico selector parser and printer', () => {
  it.each([
    ['', 'all()'],
    ['   ', 'all()'],
    ['all()', 'all()'],
    ['all( )', 'all()'],
    ['global()', 'global()'],
    ['has( a.b/c-d_e )', 'has(a.b/c-d_e)'],
    ["a == 'b'", 'a == "b"'],
    ['a=="b"', 'a == "b"'],
    ["a != 'b'", 'a != "b"'],
    [`a == '"q"'`, `a == '"q"'`],
    ["a == ''", 'a == ""'],
    ["a in { 'y', 'x', 'x' }", 'a in {"x", "y"}'],
    ['a not in {}', 'a not in {}'],
    ["a not  in {'x'}", 'a not in {"x"}'],
    ['!has(a)', '!has(a)'],
    ['!!has(a)', 'has(a)'],
    ["! (a == 'b' || c == 'd')", '!(a == "b" || c == "d")'],
    ["a == 'b' && c == 'd' || e == 'f'", '((a == "b" && c == "d") || e == "f")'],
    ["a == 'b' || c == 'd' && e == 'f'", '(a == "b" || (c == "d" && e == "f"))'],
    ["(a == 'b')", 'a == "b"'],
    ["((a == 'b') && (c == 'd'))", '(a == "b" && c == "d")'],
    ["a contains 'x' && b starts with 'y' && c ends\twith 'z'", '(a contains "x" && b starts with "y" && c ends with "z")'],
    ["projectcalico.org/orchestrator == 'k8s' && app == 'web'", '(projectcalico.org/orchestrator == "k8s" && app == "web")'],
  ])('%j prints as %j', (input, printed) => {
    expect(normalizeSelector(input)).toBe(printed);
  });

  it.each([
    "a = 'b'",
    'a == b',
    'has(a',
    'has()',
    "a == 'b",
    "a == 'b' &&",
    "(a == 'b'",
    "a == 'b')",
    "a foo 'b'",
    "a starts 'b'",
    'a in {"x" "y"}',
    "a == 'b' & c == 'd'",
    'all(',
    '@',
  ])('%j is refused', (input) => {
    expect(() => parseSelector(input)).toThrow(SelectorSyntaxError);
    expect(normalizeSelector(input)).toBeUndefined();
  });

  it('sorts set values in UTF-8 byte order (Go strings), not UTF-16 order', () => {
    expect(normalizeSelector("a in {'😀', '\uFFFD', 'z'}")).toBe('a in {"z", "\uFFFD", "😀"}');
  });

  it('prefixes every label it tests (PrefixVisitor), leaves all()/global() alone, gives "" for a bad selector', () => {
    expect(prefixSelector("a == 'b' && !has(c) || d in {'x'} || e contains 'y'", 'pcns.')).toBe('((pcns.a == "b" && !has(pcns.c)) || pcns.d in {"x"} || pcns.e contains "y")');
    expect(prefixSelector('all()', 'pcns.')).toBe('all()');
    expect(prefixSelector('global()', 'pcsa.')).toBe('global()');
    expect(prefixSelector("a == ", 'pcns.')).toBe('');
  });
});
