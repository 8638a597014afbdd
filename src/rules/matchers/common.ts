// Matchers of the common pack (rules/common/*.yml): checks on the mail around the code
// (sign-offs, tags, subject, changelog placement, mail-client damage) that hold on any list.
// They return Matches with file '' (the mail itself) unless they point at a diff line.
import type { Address } from '../../model.js';
import type { Match, MatchContext, Matcher } from '../types.js';

// ---------------------------------------------------------------- helpers

/**
 * A Match on the mail itself (subject, commit message, trailers). The fingerprint key is the
 * problem plus the patch's clean subject: stable when the patch is re-sent or rerolled, distinct
 * between the patches of one series.
 */
function mailMatch(ctx: MatchContext, code: string | null, key: string, extra: Partial<Match> = {}): Match {
  const subject = (ctx.record.parsedSubject?.clean ?? ctx.record.subject ?? '').replace(/\s+/g, ' ').trim();
  return { file: '', line: null, side: null, function: null, code, key: `${key}\u0000${subject}`, ...extra };
}

function commitLines(ctx: MatchContext): string[] {
  return (ctx.record.commitMessage ?? '').split(/\r?\n/);
}

/** "Name <addr>" (or a bare address) -> Address. */
export function parseAddress(value: string): Address {
  const m = /^(.*?)\s*<([^>]+)>/.exec(value.trim());
  if (m) return { name: m[1]!.replace(/^"|"$/g, '').trim(), address: m[2]!.trim() };
  const a = /[^\s<>]+@[^\s<>]+/.exec(value);
  return { name: a ? value.replace(a[0], '').trim() : value.trim(), address: a ? a[0] : '' };
}

function fmtAddress(a: Address): string {
  return a.name ? (a.address ? `${a.name} <${a.address}>` : a.name) : a.address;
}

const normName = (s: string): string => s.toLowerCase().replace(/["']/g, '').replace(/\s+/g, ' ').trim();

/** Trailer values of one name, from the record's trailers (not those given in replies) and the commit message. */
function trailerValues(ctx: MatchContext, name: string): string[] {
  const want = name.toLowerCase();
  const out: string[] = [];
  for (const t of ctx.record.trailers ?? []) {
    if (t.name.toLowerCase() === want && !t.givenIn) out.push(t.value.trim());
  }
  const re = new RegExp(`^\\s*${name}\\s*:\\s*(.*)$`, 'i');
  for (const l of commitLines(ctx)) {
    const m = re.exec(l);
    if (m) out.push(m[1]!.trim());
  }
  return [...new Set(out)];
}

// ---------------------------------------------------------------- common/signed-off-by

/** Sender names that mailing lists write when they rewrite From: for DMARC. */
const MUNGED = /\bvia\b|^\s*$/i;

export const signedOffBy: Matcher = (ctx) => {
  const sobs = trailerValues(ctx, 'Signed-off-by').map(parseAddress);
  const author = ctx.record.author;
  if (!sobs.length) {
    return [
      mailMatch(ctx, null, 'missing', {
        message: `No Signed-off-by: the patch needs one from its author${author?.address ? ` (${fmtAddress(author)})` : ''} to certify the DCO.`,
      }),
    ];
  }
  if (!author || (!author.address && !author.name)) return [];
  const addr = author.address.toLowerCase();
  if (addr && sobs.some((s) => s.address.toLowerCase() === addr)) return [];
  if (author.name && sobs.some((s) => s.name && normName(s.name) === normName(author.name))) return [];
  // A "From:" further down the message names the real author when the sender wraps the patch
  // (stable review mails: "6.19-stable review patch ... ---- From: Ard ..."): their sign-off is enough.
  const later = commitLines(ctx)
    .map((l) => /^From:\s*(.+)$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => !!m)
    .map((m) => parseAddress(m[1]!));
  if (later.some((a) => sobs.some((s) => (a.address && s.address.toLowerCase() === a.address.toLowerCase()) || (a.name && normName(a.name) === normName(s.name))))) return [];
  // A list that rewrote From: ("Jane Doe via Xen-devel <xen-devel@...>") hides the author: say nothing.
  if (MUNGED.test(author.name) || /@lists?\./i.test(addr)) return [];
  return [
    mailMatch(ctx, fmtAddress(author), `author:${addr || normName(author.name)}`, {
      vars: { author: fmtAddress(author), signers: sobs.map(fmtAddress).join(', ') },
    }),
  ];
};

// ---------------------------------------------------------------- common/fixes-tag

const GOOD_FIXES = /^([0-9a-f]{12,40})\s+\("(.+)"\)\s*$/i;

/** What is wrong with one Fixes: value (the text after "Fixes:"), or null when it is well formed. */
export function fixesProblem(value: string): string | null {
  const v = value.trim();
  if (GOOD_FIXES.test(v)) return null;
  if (/^#\s*\d+/.test(v) || /^(?:https?:\/\/|gh-|issue\b)/i.test(v)) {
    return `"Fixes: ${v}" names an issue, not a commit: use Fixes: <12+ hex sha> ("<subject>") of the commit that introduced the bug.`;
  }
  if (/^commit\b/i.test(v)) {
    return `Drop the word "commit" in "Fixes: ${v}": the form is Fixes: <12+ hex sha> ("<subject>").`;
  }
  const sha = /^([0-9a-f]+)\b/i.exec(v);
  // A short all-letter word ("a", "add", "bad") is prose, not a sha.
  if (!sha || (!/\d/.test(sha[1]!) && sha[1]!.length < 7)) {
    return `"Fixes: ${v}" needs a commit id: Fixes: <12+ hex sha> ("<subject>").`;
  }
  if (sha[1]!.length < 12) {
    return `The Fixes: sha "${sha[1]}" is too short: give at least 12 hex digits (git log -1 --abbrev=12 --format='%h ("%s")').`;
  }
  const rest = v.slice(sha[1]!.length).trim();
  if (!rest) return `Fixes: ${sha[1]} lacks the commit's subject: add ("<subject>").`;
  if (/^\("/.test(rest) && !/"\)\s*$/.test(rest)) {
    return `The Fixes: tag for ${sha[1]} is cut short: keep it on one line with the whole subject in ("...").`;
  }
  return `Write the subject of ${sha[1]} as ("<subject>"): Fixes: ${sha[1]} ("...").`;
}

export const fixesTag: Matcher = (ctx) => {
  const out: Match[] = [];
  const seen = new Set<string>();
  const lines = [
    ...commitLines(ctx),
    ...(ctx.record.trailers ?? []).filter((t) => t.name.toLowerCase() === 'fixes' && !t.givenIn).map((t) => `Fixes: ${t.value}`),
  ];
  for (const raw of lines) {
    const l = raw.trim();
    // "Fixes:" tags, and the GitHub habit "Fixes #123" (a sentence "Fixes the ..." is prose).
    const m = /^fixes\s*:\s*(.*)$/i.exec(l) ?? /^fixes\s+(#\d+.*)$/i.exec(l);
    if (!m) continue;
    const value = m[1]!.trim();
    if (seen.has(value)) continue;
    seen.add(value);
    const problem = fixesProblem(value);
    if (problem) out.push(mailMatch(ctx, l, `fixes:${value.replace(/\s+/g, ' ')}`, { message: problem }));
  }
  return out;
};

// ---------------------------------------------------------------- common/subject-form

export const SUBJECT_MAX = 75;

export const subjectForm: Matcher = (ctx) => {
  const subject = (ctx.record.parsedSubject?.clean ?? ctx.record.subject ?? '').trim();
  if (!subject) return [];
  const out: Match[] = [];
  // An area is one word ("x86/domain", "tools/xl"), or two when the second is lower case ("driver core").
  if (!/^[^\s:]+(?: [a-z][^\s:]*)?:\s+\S/.test(subject) && !/^Revert\s+"/.test(subject)) {
    out.push(
      mailMatch(ctx, subject, 'prefix', {
        message: 'The subject has no "area: " prefix: start it with the part of the tree the patch touches, e.g. "x86/domain: Ensure ..." or "tools/xl: Fix ...".',
      }),
    );
  }
  if (/[^.]\.$/.test(subject)) {
    out.push(mailMatch(ctx, subject, 'period', { message: 'Drop the full stop at the end of the subject.' }));
  }
  if (subject.length > SUBJECT_MAX) {
    out.push(
      mailMatch(ctx, subject, 'length', {
        message: `The subject is ${subject.length} characters: keep it within ${SUBJECT_MAX} so it reads whole in git log --oneline.`,
      }),
    );
  }
  return out;
};

// ---------------------------------------------------------------- common/changelog-placement

/** A line that starts a version changelog ("v2:", "Changes in v2", "Changes since v1", "v1 -> v2"). */
export const CHANGELOG_LINE =
  /^\s*(?:[-*]\s*)?(?:changes\s+(?:in|since|from|for|to)\s+v\d+|changes\s+v\d+|changelog\b|change\s+log\b|v\d+(?:\.\d+)?\s*(?:->|=>|→)\s*v\d+|v\d+(?:\.\d+)?\s*[:)]|(?:in|since)\s+v\d+(?:\.\d+)?\s*:|v\d+\s+changes\b)/i;

export const changelogPlacement: Matcher = (ctx) => {
  const version = ctx.record.parsedSubject?.series?.version ?? 1;
  if (version < 2) return [];
  const line = commitLines(ctx).find((l) => CHANGELOG_LINE.test(l));
  if (!line) return [];
  return [mailMatch(ctx, line.trim(), 'changelog', { vars: { changelog: line.trim() } })];
};

// ---------------------------------------------------------------- common/whitespace-damage

export const whitespaceDamage: Matcher = (ctx) => {
  const details = [...new Set([...(ctx.record.diff?.damage ?? []), ...(ctx.record.damage ?? [])])];
  if (!ctx.record.whitespaceDamaged && !(ctx.record.diff?.damage.length ?? 0)) return [];
  // The first match carries the rule's message; the details become notes of the same finding.
  return [mailMatch(ctx, null, 'damaged'), ...details.slice(0, 5).map((d) => mailMatch(ctx, null, 'damaged', { message: `Seen: ${d}` }))];
};

export const commonMatchers: Record<string, Matcher> = {
  'common.signedOffBy': signedOffBy,
  'common.fixesTag': fixesTag,
  'common.subjectForm': subjectForm,
  'common.changelogPlacement': changelogPlacement,
  'common.whitespaceDamage': whitespaceDamage,
};
