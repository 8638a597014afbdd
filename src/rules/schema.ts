// JSON schemas of a rule file (rules/<pack>/<name>.yml) and a pack's knowledge base
// (rules/<pack>/kb.yml), checked with ajv. Errors are turned into sentences that name the
// field and say what to write instead: the people who read them are rule authors.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

const severity = { enum: ['error', 'warning', 'info'] };
const stringList = { type: 'array', items: { type: 'string', minLength: 1 } };

const example = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'patch'],
  properties: {
    name: { type: 'string', minLength: 1 },
    patch: { type: 'string', minLength: 1 },
    expect: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        properties: {
          file: { type: 'string', minLength: 1 },
          line: { type: 'integer', minimum: 1 },
          message: { type: 'string', minLength: 1 },
          severity,
        },
      },
    },
  },
};

export const RULE_SCHEMA = {
  $id: 'patchvet/rule',
  type: 'object',
  additionalProperties: false,
  required: ['id', 'title', 'severity', 'message', 'guide', 'examples'],
  properties: {
    id: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]*/[a-z0-9][a-z0-9-]*$' },
    title: { type: 'string', minLength: 1 },
    severity,
    scope: {
      type: 'object',
      additionalProperties: false,
      properties: { paths: stringList, excludePaths: stringList, lists: stringList, symbols: stringList },
    },
    trigger: {
      type: 'object',
      additionalProperties: false,
      properties: { added: stringList, removed: stringList },
    },
    condition: {
      type: 'object',
      additionalProperties: false,
      properties: {
        inFunction: stringList,
        notInFunction: stringList,
        insideBlock: { type: 'string', minLength: 1 },
        notInsideBlock: { type: 'string', minLength: 1 },
      },
    },
    matcher: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$' },
    options: { type: 'object' },
    message: { type: 'string', minLength: 1 },
    guide: { type: 'string', minLength: 1 },
    references: stringList,
    examples: {
      type: 'object',
      additionalProperties: false,
      required: ['flag', 'ok'],
      properties: {
        flag: { type: 'array', minItems: 1, items: example },
        ok: { type: 'array', minItems: 1, items: example },
      },
    },
  },
} as const;

export const KB_SCHEMA = {
  $id: 'patchvet/kb',
  type: 'object',
  additionalProperties: false,
  properties: {
    lists: { type: 'object', additionalProperties: stringList },
    functions: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        properties: {
          sets: stringList,
          clears: stringList,
          allocates: stringList,
          resets: stringList,
          idle: { enum: ['never', 'always', 'both'] },
          note: { type: 'string' },
        },
      },
    },
  },
} as const;

/** One problem in one file. `message` is a whole sentence: "<file>: <field>: <what is wrong>; <what to do>". */
export interface SchemaProblem {
  field: string | null;
  problem: string;
}

const ajv = new Ajv({ allErrors: true, strict: true, verbose: true });
const validateRuleSchema: ValidateFunction = ajv.compile(RULE_SCHEMA);
const validateKbSchema: ValidateFunction = ajv.compile(KB_SCHEMA);

/** What each top-level field is for: said when it is missing. */
const FIELD_HINTS: Record<string, string> = {
  id: 'the rule id "<pack>/<name>", e.g. "common/fixes-tag"; never reuse an old one',
  title: 'a one-line title',
  severity: 'one of error, warning, info',
  message: 'the message template shown to the author ({function}, {file}, {line}, {symbol} and matcher vars are filled in)',
  guide: 'the invariant, why it matters, and a right and a wrong example (the LLM pass reads it too)',
  examples: 'examples: {flag: [...], ok: [...]}: patches the rule must flag and near misses it must leave alone',
  flag: 'at least one {name, patch} the rule must flag',
  ok: 'at least one near-miss {name, patch} the rule must not flag',
  name: 'a short name for the example',
  patch: 'the example: a whole mail, or just a unified diff',
};

const ALLOWED: Record<string, string[]> = {
  '': Object.keys(RULE_SCHEMA.properties),
  scope: ['paths', 'excludePaths', 'lists', 'symbols'],
  trigger: ['added', 'removed'],
  condition: ['inFunction', 'notInFunction', 'insideBlock', 'notInsideBlock'],
  examples: ['flag', 'ok'],
  example: ['name', 'patch', 'expect'],
  expect: ['file', 'line', 'message', 'severity'],
  kb: ['lists', 'functions'],
  facts: ['sets', 'clears', 'allocates', 'resets', 'idle', 'note'],
};

/** "/trigger/added/0" -> "trigger.added[0]". */
export function fieldPath(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (child !== undefined) parts.push(child);
  let s = '';
  for (const p of parts) s += /^\d+$/.test(p) ? `[${p}]` : s ? `.${p}` : p;
  return s || '(top level)';
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest allowed name, if it is close enough to be a typo. */
export function didYouMean(word: string, allowed: string[]): string | undefined {
  // An abbreviation ("funcs", "cond") is a typo too.
  const lw = word.toLowerCase();
  const abbreviates = (a: string): boolean => {
    const la = a.toLowerCase();
    if (lw.length < 3 || la[0] !== lw[0]) return false;
    let k = 0;
    for (const ch of la) if (ch === lw[k]) k++;
    return k === lw.length;
  };
  const abbr = allowed.find(abbreviates);
  if (abbr) return abbr;
  let best: string | undefined;
  let bestD = Infinity;
  for (const a of allowed) {
    const dd = distance(word, a);
    if (dd < bestD) {
      bestD = dd;
      best = a;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function allowedAt(kind: 'rule' | 'kb', instancePath: string): string[] {
  const parts = instancePath.split('/').slice(1);
  if (kind === 'kb') return parts.length === 0 ? ALLOWED.kb! : ALLOWED.facts!;
  if (parts.length === 0) return ALLOWED['']!;
  if (parts[0] === 'examples') {
    if (parts.length === 1) return ALLOWED.examples!;
    if (parts.length === 3) return ALLOWED.example!;
    return ALLOWED.expect!;
  }
  return ALLOWED[parts[0]!] ?? [];
}

function typeHint(field: string, type: string): string {
  if (type === 'array') {
    if (/^examples\.(flag|ok)$/.test(field)) return 'a list of {name, patch} entries';
    if (/expect$/.test(field)) return 'a list of {file, line, message, severity} entries';
    return `a list of strings, e.g. ["${field.startsWith('scope.paths') ? 'xen/**' : 'value'}"]`;
  }
  if (type === 'object') return 'a mapping (key: value lines)';
  if (type === 'string') return 'a string (quote it if YAML reads it as something else)';
  if (type === 'integer') return 'a whole number';
  return `a ${type}`;
}

function describe(kind: 'rule' | 'kb', e: ErrorObject): SchemaProblem {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required': {
      const prop = String(p.missingProperty);
      const hint = FIELD_HINTS[prop];
      return { field: fieldPath(e.instancePath, prop), problem: `missing: add it${hint ? ` (${hint})` : ''}` };
    }
    case 'additionalProperties': {
      const prop = String(p.additionalProperty);
      const allowed = allowedAt(kind, e.instancePath);
      const guess = didYouMean(prop, allowed);
      return {
        field: fieldPath(e.instancePath, prop),
        problem: `unknown field${guess ? `: did you mean "${guess}"?` : ''} (allowed here: ${allowed.join(', ')})`,
      };
    }
    case 'type': {
      const field = fieldPath(e.instancePath);
      return { field, problem: `must be ${typeHint(field, String(p.type))}, not ${Array.isArray(e.data) ? 'a list' : e.data === null ? 'empty' : typeof e.data === 'object' ? 'a mapping' : JSON.stringify(e.data)}` };
    }
    case 'enum':
      return {
        field: fieldPath(e.instancePath),
        problem: `must be one of ${(p.allowedValues as unknown[]).join(', ')} (not ${JSON.stringify(e.data)})`,
      };
    case 'pattern': {
      const field = fieldPath(e.instancePath);
      if (field === 'id') return { field, problem: 'must be "<pack>/<name>" in lower case with dashes, e.g. "common/fixes-tag"' };
      if (field === 'matcher') return { field, problem: 'must be a matcher name (letters, digits, ".", "_", "-"), conventionally "<pack>.<name>", e.g. "common.signedOffBy"' };
      return { field, problem: `must match ${String(p.pattern)}` };
    }
    case 'minItems': {
      const field = fieldPath(e.instancePath);
      const which = field.endsWith('flag') ? 'a patch the rule must flag' : field.endsWith('ok') ? 'a near-miss patch the rule must leave alone' : 'an entry';
      return { field, problem: `is empty: add at least one (${which})` };
    }
    case 'minLength':
      return { field: fieldPath(e.instancePath), problem: 'must not be empty' };
    case 'minimum':
      return { field: fieldPath(e.instancePath), problem: `must be at least ${String(p.limit)}` };
    default:
      return { field: fieldPath(e.instancePath), problem: e.message ?? `fails ${e.keyword}` };
  }
}

function problems(kind: 'rule' | 'kb', v: ValidateFunction, data: unknown): SchemaProblem[] {
  if (v(data)) return [];
  const seen = new Set<string>();
  const out: SchemaProblem[] = [];
  for (const e of v.errors ?? []) {
    const d = describe(kind, e);
    const k = `${d.field}\u0000${d.problem}`;
    if (!seen.has(k)) {
      seen.add(k);
      out.push(d);
    }
  }
  return out;
}

export function validateRuleData(data: unknown): SchemaProblem[] {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    return [{ field: null, problem: 'a rule file must hold one mapping (id:, title:, severity:, ...), not a list or a scalar' }];
  }
  return problems('rule', validateRuleSchema, data);
}

export function validateKbData(data: unknown): SchemaProblem[] {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    return [{ field: null, problem: 'kb.yml must hold a mapping with "lists:" and/or "functions:"' }];
  }
  return problems('kb', validateKbSchema, data);
}
