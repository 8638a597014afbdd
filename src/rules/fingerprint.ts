// Finding fingerprints: the same problem keeps the same id when a patch is re-sent, rebased
// (line numbers move) or posted as v2, so sinks can tell "still there" from "new".
// Inputs: rule id, file path, function, and the code normalised (whitespace collapsed,
// identifiers kept). Never line numbers, subjects, message-ids or version numbers.
import { createHash } from 'node:crypto';
import { lineTokens } from './context.js';

/**
 * Code text with whitespace normalised: tokens are joined with one space only between two
 * word-like tokens ("static int", "return rc"), so "if ( x )" and "if (x)" and a re-indented
 * line all give "if(x)". Comments are kept (collapsed) so two different comment lines differ.
 */
export function normaliseCode(code: string | null | undefined): string {
  if (!code) return '';
  const toks = lineTokens(code);
  if (!toks.length) return code.replace(/\s+/g, ' ').trim();
  let s = '';
  let prevWord = false;
  for (const t of toks) {
    const word = t.type !== 'punct';
    if (s && word && prevWord) s += ' ';
    s += t.text;
    prevWord = word;
  }
  return s;
}

/** sha256 over rule, file, function and key (normalised code unless the matcher gave a key); 16 hex chars. */
export function fingerprint(rule: string, file: string | null, fn: string | null, key: string): string {
  return createHash('sha256')
    .update([rule, file ?? '', fn ?? '', key].join('\u0000'))
    .digest('hex')
    .slice(0, 16);
}
