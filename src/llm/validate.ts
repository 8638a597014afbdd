// Holding the model's answer to the diff. Pure. Nothing the model says reaches a reader unless:
//   1. the answer is a JSON object valid against the schema we sent (ajv, same schema);
//   2. each finding names a file of this patch and a new-side line the patch shows (added or
//      context), and quotes that line's code (whitespace aside);
//   3. its message, once links, addresses and @-mentions are stripped, is still a plain,
//      specific sentence, and says nothing about acceptance (Ack/Nack/Reviewed-by, "apply
//      this") and gives no instructions to readers;
//   4. it is confident enough, repeats no rule finding (same place, same meaning) and no
//      reviewer's comment (same or adjacent line, or the same quoted code line);
//   5. it is among the first `maxFindings` (by severity, then confidence).
// Survivors become Findings with source 'llm' and rule `llm/<category>`.
import { Ajv, type ValidateFunction } from 'ajv';
import type { Diff, DiffLine, Finding, MessageRecord, Severity } from '../model.js';
import { functionName } from '../rules/context.js';
import { fingerprint, normaliseCode } from '../rules/fingerprint.js';
import { compareFindings, mergeFindings } from '../rules/engine.js';
import { CATEGORIES, reviewSchema, verifySchema, type Category } from './prompt.js';
import type { PriorComment } from './thread-context.js';

/** One finding as the schema describes it. */
export interface RawLlmFinding {
  file: string;
  line: number;
  code: string;
  category: Category;
  severity: Severity;
  message: string;
  rule: string;
  confidence: number;
}

/** A finding that holds on the diff: the model's fields, checked, plus where it sits. */
export interface Candidate extends RawLlmFinding {
  /** The diff line's own text (the model's quote may differ in whitespace). */
  lineText: string;
  function: string | null;
  /** Index among the file's new-side lines, in diff order: re-anchors a cached answer after a rebase. */
  ordinal: number;
}

export interface Dropped {
  reason: string;
  file: string | null;
  line: number | null;
  message: string;
}

// ---------------------------------------------------------------- 1. the answer

const ajv = new Ajv({ allErrors: true, strict: false });
const compiled = new Map<string, ValidateFunction>();

function validator(key: string, schema: () => Record<string, unknown>): ValidateFunction {
  let v = compiled.get(key);
  if (!v) {
    v = ajv.compile(schema());
    if (compiled.size > 200) compiled.clear();
    compiled.set(key, v);
  }
  return v;
}

/** The JSON text of an answer: as is, or inside one ``` fence (servers that ignore response_format wrap it). */
function jsonText(content: string): string {
  const t = content.trim();
  const m = /^```(?:json)?\s*\n([\s\S]*?)\n```$/.exec(t);
  return m ? m[1]! : t;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

function parseWith<T>(content: string | null | undefined, v: ValidateFunction): Parsed<T> {
  if (content === null || content === undefined || !content.trim()) return { ok: false, error: 'empty answer' };
  let data: unknown;
  try {
    data = JSON.parse(jsonText(content));
  } catch (e) {
    return { ok: false, error: `not JSON (${(e as Error).message.slice(0, 80)})` };
  }
  if (!v(data)) {
    const e = v.errors?.[0];
    return { ok: false, error: `not the schema: ${e ? `${e.instancePath || '/'} ${e.message}` : 'invalid'}` };
  }
  return { ok: true, value: data as T };
}

/** Parse and validate a review answer against the schema sent with `ruleIds`. */
export function parseReviewAnswer(content: string | null | undefined, ruleIds: readonly string[]): Parsed<RawLlmFinding[]> {
  const r = parseWith<{ findings: RawLlmFinding[] }>(content, validator(`review\u0000${ruleIds.join('\u0000')}`, () => reviewSchema(ruleIds)));
  return r.ok ? { ok: true, value: r.value.findings } : r;
}

export interface Verdict {
  index: number;
  keep: boolean;
  confidence: number;
}

export function parseVerifyAnswer(content: string | null | undefined): Parsed<Verdict[]> {
  const r = parseWith<{ verdicts: Verdict[] }>(content, validator('verify', verifySchema));
  return r.ok ? { ok: true, value: r.value.verdicts } : r;
}

// ---------------------------------------------------------------- 3. messages

/** Verdicts on the patch as a whole: the LLM pass never decides acceptance. */
const ACCEPTANCE: RegExp[] = [
  /\b(acked|nacked|reviewed|tested|signed-off|reported|suggested|co-developed)-by\b/i,
  /^\W*(n?ack(ed)?|lgtm|approved?|looks good)\b/i,
  /\bnack(ed)?\b/i,
  /\b(lgtm|looks good to me|ship it)\b/i,
  /\bapprov(e|ed|es|ing|al)\b/i,
  /\b(should|can|could|must|may)\s+(not\s+)?(be\s+)?(merged|applied|committed|accepted|rejected|reverted)\b/i,
  /\b(please|go ahead and|ok to|safe to)\s+(merge|apply|commit|accept|reject|pull)\b/i,
  /\b(do\s+not|don'?t|never)\s+(merge|apply|commit|accept|pull)\b/i,
  /\b(accept|reject)\s+(this|the)\s+(patch|change|series)\b/i,
];

/** Text that addresses readers or talks about the prompt instead of the code. */
const INSTRUCTION: RegExp[] = [
  /\b(ignore|disregard|forget)\b.{0,40}\b(instructions?|previous|above|earlier|rules?|prompt|findings?|review(ers)?)\b/i,
  /\b(reviewers?|maintainers?|readers?|everyone|bots?|committers?)\b\s*[:,]?\s*(please|should|must|need to|have to)\b/i,
  /\b(system prompt|prompt injection|as an ai|language model|my instructions)\b/i,
  /\b(click|visit|open|follow)\s+(here|this|the)\s+(link|url|page)\b/i,
  /\b(reply|respond|write back|post)\s+(with|to|on)\b/i,
  /\b(forward|send)\s+(this|it)\s+to\b/i,
];

const URLS: RegExp[] = [
  /!\[[^\]]*\]\([^)]*\)/g, // markdown images: gone
  // (A sentence's full stop after a URL is not part of it.)
  /\b(?:https?|ftp|file|mailto|data|javascript|ssh|git):\/*(?:[^\s)>\]]*[^\s)>\].,;:!?'"])?/gi,
  /\bwww\.(?:[^\s)>\]]*[^\s)>\].,;:!?'"])?/gi,
  /\b(?:[a-z0-9-]+\.)+(?:com|org|net|io|dev|xyz|info|biz|co|me|ly|gl|ai|app|ru|cn|tk|top|site|online|link)\/(?:[^\s)>\]]*[^\s)>\].,;:!?'"])?/gi,
];

export interface SanitisedMessage {
  text: string | null;
  /** What was removed ("link", "address", "mention", "html") or why it was rejected. */
  stripped: string[];
  rejected?: string;
}

/** A message as it may reach readers, or a reason it may not. */
export function sanitiseMessage(input: string): SanitisedMessage {
  const stripped: string[] = [];
  let t = input.replace(/[\u0000-\u0008\u000b-\u001f\u007f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/g, ' ');
  for (const re of ACCEPTANCE) if (re.test(t)) return { text: null, stripped, rejected: 'acceptance language' };
  for (const re of INSTRUCTION) if (re.test(t)) return { text: null, stripped, rejected: 'instructions to readers' };
  const strip = (re: RegExp, what: string, by = '') => {
    const n = t.replace(re, by);
    if (n !== t) {
      stripped.push(what);
      t = n;
    }
  };
  strip(/\[([^\]]*)\]\(([^)]*)\)/g, 'link', '$1'); // [text](url) -> text
  for (const re of URLS) strip(re, 'link');
  strip(/<?\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b>?/g, 'address');
  strip(/(^|[\s(,;:])@[A-Za-z0-9_](?:[\w-]|\.(?=\w))*/g, 'mention', '$1');
  strip(/<\/?(a|img|script|iframe|style|link|meta|object|embed|form|input|button|svg|video|audio)\b[^>]*>/gi, 'html');
  // Tidy what stripping left: "( )", " ." (a "()" after a function name is kept).
  t = t.replace(/\(\s+\)/g, '').replace(/\s+/g, ' ').replace(/\s+([.,;:!?])/g, '$1').trim();
  if (t.length > 400) {
    const cut = t.slice(0, 400);
    const end = cut.lastIndexOf('. ');
    t = (end > 200 ? cut.slice(0, end + 1) : cut.trimEnd() + '…').trim();
  }
  const words = t.split(/\s+/).filter((w) => /[A-Za-z]/.test(w));
  if (t.length < 20 || words.length < 4) return { text: null, stripped, rejected: stripped.length ? 'nothing specific left once links were removed' : 'too short to be specific' };
  return { text: t, stripped };
}

// ---------------------------------------------------------------- 2. held to the diff

function compact(s: string): string {
  return s.replace(/\s+/g, '');
}

/** The quote is that line: equal without whitespace, or a substantial part of it. */
export function quoteMatches(quote: string, lineText: string): boolean {
  const q = compact(quote);
  const l = compact(lineText);
  if (!q) return !l && false;
  if (q === l) return true;
  return q.length >= 10 && q.length * 2 >= l.length && l.includes(q);
}

interface NewLine {
  line: DiffLine;
  ordinal: number;
}

/** New-side lines (added and context) of each file, in diff order. */
export function newSideLines(diff: Diff): Map<string, NewLine[]> {
  const out = new Map<string, NewLine[]>();
  for (const f of diff.files) {
    if (!f.newPath) continue;
    const arr: NewLine[] = [];
    for (const h of f.hunks) for (const l of h.lines) if (l.newLine !== null) arr.push({ line: l, ordinal: arr.length });
    out.set(f.path, arr);
  }
  return out;
}

function cleanPath(p: string): string {
  return p.trim().replace(/^[ab]\//, '').replace(/^\.\//, '');
}

export interface HoldOptions {
  minConfidence: number;
}

/** Steps 2 and 3 (and the confidence threshold): what of the answer holds on this diff. */
export function holdToDiff(raw: readonly RawLlmFinding[], diff: Diff, opts: HoldOptions): { kept: Candidate[]; dropped: Dropped[] } {
  const files = newSideLines(diff);
  const kept: Candidate[] = [];
  const dropped: Dropped[] = [];
  for (const r of raw) {
    const drop = (reason: string) => dropped.push({ reason, file: r.file, line: r.line, message: r.message });
    const path = cleanPath(r.file);
    const lines = files.get(path);
    if (!lines) {
      drop('file not in the patch');
      continue;
    }
    const at = lines.find((l) => l.line.newLine === r.line);
    if (!at) {
      drop('line not in the patch');
      continue;
    }
    if (!quoteMatches(r.code, at.line.text)) {
      drop('quoted code does not match the line');
      continue;
    }
    if (!CATEGORIES.includes(r.category)) {
      drop('unknown category');
      continue;
    }
    const m = sanitiseMessage(r.message);
    if (m.text === null) {
      drop(`message rejected: ${m.rejected}`);
      continue;
    }
    const confidence = Math.max(0, Math.min(1, r.confidence));
    if (confidence < opts.minConfidence) {
      drop(`low confidence (${confidence.toFixed(2)})`);
      continue;
    }
    kept.push({
      ...r,
      file: path,
      message: m.text,
      confidence,
      // A guess is never an error: LLM findings are at most warnings.
      severity: r.severity === 'error' ? 'warning' : r.severity,
      lineText: at.line.text,
      function: functionName(at.line.fn),
      ordinal: at.ordinal,
    });
  }
  return { kept, dropped };
}

/**
 * A cached candidate placed on the current diff: same file, same position among its
 * new-side lines with the same code (a rebase moves line numbers, not that), else the
 * nearest line with the same code. null when the code is gone.
 */
export function reanchor(c: Candidate, diff: Diff): Candidate | null {
  const lines = newSideLines(diff).get(c.file);
  if (!lines) return null;
  const want = compact(c.lineText);
  const same = lines[c.ordinal];
  const hit =
    same && compact(same.line.text) === want
      ? same
      : lines.filter((l) => compact(l.line.text) === want).sort((a, b) => Math.abs(a.line.newLine! - c.line) - Math.abs(b.line.newLine! - c.line))[0];
  if (!hit) return null;
  return { ...c, line: hit.line.newLine!, lineText: hit.line.text, function: functionName(hit.line.fn), ordinal: hit.ordinal };
}

// ---------------------------------------------------------------- 4. repeats

const STOP = new Set(
  'the a an and or but not no of to in on at by for with from into this that these those it its is are was were be been being has have had do does did so as if then than there here which who what when where why how can could should would may might must will shall also only just more most less very such any all each both other same own too out up down over under again once about after before while because until'.split(' '),
);

/** Content words of a text (lower case, no stop words, three letters or more). */
export function contentWords(s: string): Set<string> {
  return new Set(
    s
      .toLowerCase()
      .split(/[^a-z0-9_]+/)
      .filter((w) => w.length >= 3 && !STOP.has(w)),
  );
}

/** Dice coefficient of two texts' content words (0..1). */
export function textSimilarity(a: string, b: string): number {
  const A = contentWords(a);
  const B = contentWords(b);
  if (!A.size || !B.size) return 0;
  let both = 0;
  for (const w of A) if (B.has(w)) both++;
  return (2 * both) / (A.size + B.size);
}

/** Same meaning: the model names the rule, or the texts share much of their vocabulary. */
function sameMeaning(c: Candidate, f: Finding): boolean {
  if (c.rule !== 'none' && c.rule === f.rule) return true;
  return textSimilarity(c.message, [f.title, f.message, ...(f.notes ?? [])].join(' ')) >= 0.3;
}

export function dropRepeats(
  cands: readonly Candidate[],
  ruleFindings: readonly Finding[],
  prior: readonly PriorComment[],
): { kept: Candidate[]; dropped: Dropped[] } {
  const kept: Candidate[] = [];
  const dropped: Dropped[] = [];
  const drop = (c: Candidate, reason: string) => dropped.push({ reason, file: c.file, line: c.line, message: c.message });
  // Best first, so that among repeats of each other the most confident one stays.
  const sorted = [...cands].sort((a, b) => b.confidence - a.confidence);
  for (const c of sorted) {
    const rule = ruleFindings.find(
      (f) =>
        f.file === c.file &&
        f.line !== null &&
        (f.line === c.line || (Math.abs(f.line - c.line) <= 2 && !!c.function && f.function === c.function)) &&
        sameMeaning(c, f),
    );
    // The rule the model names already fired in this function: it has been said there.
    const sameRuleHere = c.rule !== 'none' && ruleFindings.some((f) => f.rule === c.rule && f.file === c.file && !!c.function && f.function === c.function);
    if (rule || sameRuleHere) {
      drop(c, `repeats rule finding ${(rule ?? ruleFindings.find((f) => f.rule === c.rule))!.rule}`);
      continue;
    }
    const said = prior.find(
      (p) =>
        p.file === c.file &&
        ((p.line !== null && Math.abs(p.line - c.line) <= 1) || (p.code !== null && compact(p.code) !== '' && compact(p.code) === compact(c.lineText))),
    );
    if (said) {
      drop(c, `a reviewer already commented here (${said.by})`);
      continue;
    }
    const twin = kept.find((k) => k.file === c.file && (k.line === c.line || (compact(k.lineText) === compact(c.lineText) && k.category === c.category)));
    if (twin) {
      drop(c, 'repeats another LLM finding');
      continue;
    }
    kept.push(c);
  }
  return { kept, dropped };
}

// ---------------------------------------------------------------- 5. cap, and Findings

const RANK: Record<Severity, number> = { error: 2, warning: 1, info: 0 };

export function capFindings(cands: readonly Candidate[], max: number): { kept: Candidate[]; dropped: Dropped[] } {
  const sorted = [...cands].sort((a, b) => RANK[b.severity] - RANK[a.severity] || b.confidence - a.confidence);
  return {
    kept: sorted.slice(0, max),
    dropped: sorted.slice(max).map((c) => ({ reason: `over the cap of ${max} findings per patch`, file: c.file, line: c.line, message: c.message })),
  };
}

export const LLM_RULE_PREFIX = 'llm/';

export function llmFinding(c: Candidate, record: MessageRecord): Finding {
  const rule = `${LLM_RULE_PREFIX}${c.category}`;
  const s = record.parsedSubject?.series;
  return {
    rule,
    severity: c.severity,
    title: `Second opinion (LLM): ${c.category.replace(/-/g, ' ')}`,
    message: c.message,
    messageId: record.messageId,
    subject: record.subject,
    series: s ? { version: s.version, index: s.index, total: s.total } : null,
    file: c.file,
    line: c.line,
    side: 'new',
    function: c.function,
    code: c.lineText,
    fingerprint: fingerprint(rule, c.file, c.function, normaliseCode(c.lineText)),
    source: 'llm',
    ...(c.rule !== 'none' ? { notes: [`Related to ${c.rule}.`] } : {}),
  };
}

/** Candidates -> Findings, one per (rule, file, function) like rule findings, sorted. */
export function toFindings(cands: readonly Candidate[], record: MessageRecord): Finding[] {
  return mergeFindings(cands.map((c) => llmFinding(c, record))).sort(compareFindings);
}
