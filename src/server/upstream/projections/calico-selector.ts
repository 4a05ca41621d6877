/**
 * Calico's label selector language: a tokenizer, a recursive-descent parser and the printer, as
 * libcalico-go's `lib/selector/tokenizer/tokenizer.go` and `lib/selector/parser/{parser,ast,
 * stringset}.go` define them. Only what the update processors need: parse, prefix every label
 * (`PrefixVisitor`: `pcns.`, `pcsa.`), print back in the canonical form Felix receives. Evaluation
 * stays with the agent. Pure.
 *
 * Grammar (lowest precedence first): or := and ('||' and)*; and := op ('&&' op)*;
 * op := '!'* ( has(label) | all() | global() | '(' or ')' | label cmp ) where cmp is `== "v"`,
 * `!= "v"`, `contains "v"`, `starts with "v"`, `ends with "v"`, `in {"a", ...}`, `not in {...}`.
 * Strings take single or double quotes, with no escapes; labels are `[A-Za-z0-9_./-]+`; only
 * space and tab are whitespace. An empty selector is `all()`.
 *
 * Printing: `a == "v"` (single quotes when the value holds a double quote), sets sorted and
 * de-duplicated in byte order, `(a && b)` / `(a || b)` for every and/or node (so one pair of
 * parentheses per node, whatever the input had), `!` glued to its operand, `has(a)`, `all()`,
 * `global()`. The printer is what makes selectors byte-equal across agents: libcalico-go re-prints
 * every namespace and service-account selector it rewrites.
 *
 * Rejected: an npm selector package — the registry has none for Calico's dialect (`has()`,
 * `global()`, `starts with`, its quoting), and Kubernetes label-selector parsers print differently.
 */
import { compareKeys } from '../../../../proto/key-order.js';

type Cmp = 'eq' | 'ne' | 'contains' | 'starts' | 'ends';

export type SelectorNode =
  | { readonly k: Cmp; label: string; readonly value: string }
  | { readonly k: 'in' | 'notin'; label: string; readonly values: readonly string[] }
  | { readonly k: 'has'; label: string }
  | { readonly k: 'not'; readonly op: SelectorNode }
  | { readonly k: 'and' | 'or'; readonly ops: readonly SelectorNode[] }
  | { readonly k: 'all' | 'global' };

type Tok =
  | { t: 'label' | 'str' | 'has'; v: string }
  | { t: '(' | ')' | '{' | '}' | ',' | '==' | '!=' | '!' | '&&' | '||' | 'in' | 'notin' | 'contains' | 'starts' | 'ends' | 'all' | 'global' | 'eof' };

/** A selector the parser refuses; libcalico-go logs it and treats the selector as absent. */
export class SelectorSyntaxError extends Error {
  override readonly name = 'SelectorSyntaxError';
}

const WS = /^[ \t]*/;

/** tokenizer.go findIdentifier: the label characters up to the first other one; "" if none or if the input ends first. */
function identifier(s: string): string {
  const m = /^[A-Za-z0-9_./-]*/.exec(s)?.[0] ?? '';
  return m.length < s.length ? m : '';
}

function tokenize(input: string): Tok[] {
  const toks: Tok[] = [];
  let s = input;
  for (;;) {
    s = s.replace(WS, '');
    if (s === '') {
      toks.push({ t: 'eof' });
      return toks;
    }
    const last = toks[toks.length - 1]?.t;
    const c = s[0];
    if (c === '(' || c === ')' || c === '{' || c === '}' || c === ',') {
      toks.push({ t: c });
      s = s.slice(1);
    } else if (c === '"' || c === "'") {
      const end = s.indexOf(c, 1);
      if (end < 0) throw new SelectorSyntaxError('unterminated string');
      toks.push({ t: 'str', v: s.slice(1, end) });
      s = s.slice(end + 1);
    } else if (c === '=') {
      if (s[1] !== '=') throw new SelectorSyntaxError('expected ==');
      toks.push({ t: '==' });
      s = s.slice(2);
    } else if (c === '!') {
      toks.push({ t: s[1] === '=' ? '!=' : '!' });
      s = s.slice(s[1] === '=' ? 2 : 1);
    } else if (c === '&' || c === '|') {
      if (s[1] !== c) throw new SelectorSyntaxError(`expected ${c}${c}`);
      toks.push({ t: c === '&' ? '&&' : '||' });
      s = s.slice(2);
    } else if (last === 'label') {
      // After a label comes an operator word, never another label.
      const word = (w: string, t: 'contains' | 'in'): boolean => {
        if (!s.startsWith(w)) return false;
        toks.push({ t });
        s = s.slice(w.length);
        return true;
      };
      const pair = (first: string, t: 'starts' | 'ends' | 'notin', second: string): boolean => {
        if (!s.startsWith(first)) return false;
        const rest = s.slice(first.length).replace(WS, '');
        if (!rest.startsWith(second)) throw new SelectorSyntaxError('unexpected characters after label, was expecting an operator');
        toks.push({ t });
        s = rest.slice(second.length);
        return true;
      };
      if (!(word('contains', 'contains') || pair('starts', 'starts', 'with') || pair('ends', 'ends', 'with') || pair('not', 'notin', 'in') || word('in', 'in'))) {
        throw new SelectorSyntaxError('unexpected characters after label, was expecting an operator');
      }
    } else if (s.startsWith('has(')) {
      const rest = s.slice(4).replace(WS, '');
      const id = identifier(rest);
      if (id === '') throw new SelectorSyntaxError('no label name in has( expression');
      const after = rest.slice(id.length).replace(WS, '');
      if (!after.startsWith(')')) throw new SelectorSyntaxError("no closing ')' after has(");
      toks.push({ t: 'has', v: id });
      s = after.slice(1);
    } else if (s.startsWith('all(') || s.startsWith('global(')) {
      const t = s.startsWith('all(') ? 'all' : 'global';
      const after = s.slice(t.length + 1).replace(WS, '');
      if (!after.startsWith(')')) throw new SelectorSyntaxError(`no closing ')' after ${t}(`);
      toks.push({ t });
      s = after.slice(1);
    } else {
      const id = identifier(s);
      if (id === '') throw new SelectorSyntaxError('unexpected characters');
      toks.push({ t: 'label', v: id });
      s = s.slice(id.length);
    }
  }
}

class Parser {
  private i = 0;
  constructor(private readonly toks: Tok[]) {}

  private peek(): Tok {
    return this.toks[this.i] as Tok;
  }

  private next(): Tok {
    return this.toks[this.i++] as Tok;
  }

  parseRoot(): SelectorNode {
    if (this.peek().t === 'eof') return { k: 'all' };
    const node = this.or();
    if (this.peek().t !== 'eof') throw new SelectorSyntaxError('unexpected content at end of selector');
    return node;
  }

  private or(): SelectorNode {
    const ops = [this.and()];
    while (this.peek().t === '||') {
      this.next();
      ops.push(this.and());
    }
    return ops.length === 1 ? (ops[0] as SelectorNode) : { k: 'or', ops };
  }

  private and(): SelectorNode {
    const ops = [this.op()];
    while (this.peek().t === '&&') {
      this.next();
      ops.push(this.op());
    }
    return ops.length === 1 ? (ops[0] as SelectorNode) : { k: 'and', ops };
  }

  private op(): SelectorNode {
    let negated = false;
    while (this.peek().t === '!') {
      this.next();
      negated = !negated;
    }
    const node = this.operand();
    return negated ? { k: 'not', op: node } : node;
  }

  private operand(): SelectorNode {
    const tok = this.next();
    switch (tok.t) {
      case 'has':
        return { k: 'has', label: tok.v };
      case 'all':
      case 'global':
        return { k: tok.t };
      case '(': {
        const inner = this.or();
        if (this.next().t !== ')') throw new SelectorSyntaxError('expected )');
        return inner;
      }
      case 'label': {
        const op = this.next();
        if (op.t === 'eof') throw new SelectorSyntaxError('unexpected end of string looking for op');
        if (op.t === '==' || op.t === '!=' || op.t === 'contains' || op.t === 'starts' || op.t === 'ends') {
          const lit = this.next();
          if (lit.t !== 'str') throw new SelectorSyntaxError('expected string');
          const k: Cmp = op.t === '==' ? 'eq' : op.t === '!=' ? 'ne' : op.t;
          return { k, label: tok.v, value: lit.v };
        }
        if (op.t === 'in' || op.t === 'notin') {
          if (this.next().t !== '{') throw new SelectorSyntaxError('expected set literal');
          const values: string[] = [];
          for (let lit = this.peek(); lit.t === 'str'; lit = this.peek()) {
            this.next();
            values.push(lit.v);
            if (this.peek().t !== ',') break;
            this.next();
          }
          if (this.next().t !== '}') throw new SelectorSyntaxError('expected }');
          // Go's sort.Strings order (UTF-8 bytes), not UTF-16 code units.
          const set = [...new Set(values)].sort(compareKeys);
          return { k: op.t, label: tok.v, values: set };
        }
        throw new SelectorSyntaxError(`expected == or != not ${op.t}`);
      }
      default:
        throw new SelectorSyntaxError(`unexpected token ${tok.t}`);
    }
  }
}

/** Parses a selector; throws {@link SelectorSyntaxError} where libcalico-go's parser fails. */
export function parseSelector(text: string): SelectorNode {
  return new Parser(tokenize(text)).parseRoot();
}

/** parser.PrefixVisitor: prefixes every label the selector tests (in place). */
export function prefixLabels(node: SelectorNode, prefix: string): void {
  switch (node.k) {
    case 'not':
      prefixLabels(node.op, prefix);
      return;
    case 'and':
    case 'or':
      for (const op of node.ops) prefixLabels(op, prefix);
      return;
    case 'all':
    case 'global':
      return;
    default:
      node.label = prefix + node.label;
  }
}

function quoted(v: string): string {
  return v.includes('"') ? `'${v}'` : `"${v}"`;
}

const CMP_TEXT: Record<Cmp, string> = { eq: ' == ', ne: ' != ', contains: ' contains ', starts: ' starts with ', ends: ' ends with ' };

/** ast.go's String(): the canonical text of a parsed selector. */
export function printSelector(node: SelectorNode): string {
  switch (node.k) {
    case 'all':
      return 'all()';
    case 'global':
      return 'global()';
    case 'has':
      return `has(${node.label})`;
    case 'not':
      return `!${printSelector(node.op)}`;
    case 'and':
    case 'or':
      return `(${node.ops.map(printSelector).join(node.k === 'and' ? ' && ' : ' || ')})`;
    case 'in':
    case 'notin':
      return `${node.label} ${node.k === 'in' ? 'in' : 'not in'} {${node.values.map(quoted).join(', ')}}`;
    default:
      return `${node.label}${CMP_TEXT[node.k]}${quoted(node.value)}`;
  }
}

/**
 * selectors.go parseSelectorAttachPrefix: the selector re-printed with every label prefixed, or ""
 * when it does not parse (libcalico-go logs the error and drops the selector).
 */
export function prefixSelector(text: string, prefix: string): string {
  let node: SelectorNode;
  try {
    node = parseSelector(text);
  } catch (err) {
    if (err instanceof SelectorSyntaxError) return '';
    throw err;
  }
  prefixLabels(node, prefix);
  return printSelector(node);
}

/** The selector in canonical form, or undefined when it does not parse. */
export function normalizeSelector(text: string): string | undefined {
  try {
    return printSelector(parseSelector(text));
  } catch (err) {
    if (err instanceof SelectorSyntaxError) return undefined;
    throw err;
  }
}
