// Hidden markers in what patchvet posts on GitHub: an HTML comment GitHub does not render, that
// names what the text is about. They make posting idempotent even without the store (a re-push
// finds its earlier comments by marker), let patchvet recognise its own comments (never forward
// them to the list), and let a resolved comment be restored. Pure.
//
//   <!-- patchvet:finding=aea885b86bdad191 -->       a rule finding (its fingerprint)
//   <!-- patchvet:mail=<msgid>#2 -->                 comment 2 of a list mail, mirrored
//   <!-- patchvet:review=<head sha> -->              a review body patchvet wrote
//   <!-- patchvet:resolved=<sha> -->                 the finding no longer shows at that commit

export type MarkerKind = 'finding' | 'mail' | 'review' | 'resolved';

const MARKER_RE = /<!-- patchvet:(finding|mail|review|resolved)=([^\s<>]+) -->/g;

/** Percent-encode what could break the HTML comment or the marker's syntax ("<", ">", "--", spaces). */
function encodeValue(v: string): string {
  return v.replace(/[%<>\s]|-(?=-)/g, (c) => [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));
}

function decodeValue(v: string): string {
  try {
    return decodeURIComponent(v);
  } catch {
    return v;
  }
}

/** The marker text for `kind` and `value`. */
export function marker(kind: MarkerKind, value: string): string {
  return `<!-- patchvet:${kind}=${encodeValue(value)} -->`;
}

export interface Marker {
  kind: MarkerKind;
  value: string;
}

/** Every marker in a text, in order. */
export function markersIn(text: string | null | undefined): Marker[] {
  if (!text) return [];
  const out: Marker[] = [];
  for (const m of text.matchAll(MARKER_RE)) out.push({ kind: m[1] as MarkerKind, value: decodeValue(m[2]!) });
  return out;
}

/** Keys ("finding:<fp>", "mail:<msgid>#n") named by a text's markers. */
export function keysIn(text: string | null | undefined): string[] {
  return markersIn(text)
    .filter((m) => m.kind === 'finding' || m.kind === 'mail')
    .map((m) => `${m.kind}:${m.value}`);
}

/** True when patchvet wrote this text (any marker). */
export function isOurs(text: string | null | undefined): boolean {
  return markersIn(text).length > 0;
}

export function findingKey(fingerprint: string): string {
  return `finding:${fingerprint}`;
}

export function mailKey(messageId: string, index: number): string {
  return `mail:${messageId}#${index}`;
}

// ---------------------------------------------------------------- resolved comments

const RESOLVED_HEAD = '**Resolved**';

/**
 * The body of a resolved finding comment: a short note on top, the original folded below it (so
 * the conversation keeps its context and the comment can be restored if the finding comes back).
 */
export function resolvedBody(original: string, sha: string): string {
  if (isResolved(original)) return original;
  return [
    `${RESOLVED_HEAD}: patchvet no longer finds this at ${sha.slice(0, 12)}.`,
    '',
    '<details><summary>What it said</summary>',
    '',
    original,
    '',
    '</details>',
    marker('resolved', sha),
  ].join('\n');
}

export function isResolved(body: string): boolean {
  return markersIn(body).some((m) => m.kind === 'resolved');
}

/** The original body of a resolved comment (the inverse of resolvedBody). */
export function reopenedBody(body: string): string {
  if (!isResolved(body)) return body;
  const start = body.indexOf('<details><summary>What it said</summary>\n\n');
  const end = body.lastIndexOf('\n\n</details>');
  if (start < 0 || end < 0) return body;
  return body.slice(start + '<details><summary>What it said</summary>\n\n'.length, end);
}
