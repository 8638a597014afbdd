// What to post on a pull request after a push: pure, from the findings of each commit, the PR's
// diff and what was posted before. The app (src/github/worker.ts) does the requests.
//
//   - ONE review per push, event COMMENT: an inline comment for each new finding on a line inside
//     the PR's diff (path, line, side); every other new finding as an item of the review body
//     (GitHub answers 422 to the whole review if one comment is outside the diff);
//   - nothing twice: a finding whose fingerprint was posted before (store, or a hidden marker in
//     an existing comment or review body) is not posted again;
//   - findings that disappeared: their open comments are marked resolved (edited, never deleted,
//     so answers keep their context); a resolved one that comes back is reopened;
//   - a check run with one annotation per current finding on a head line, and a summary.
import type { Finding, Severity } from '../model.js';
import type { GithubCommentKind, GithubCommentRow } from '../store/store.js';
import { findingKey, isResolved, keysIn, marker } from './markers.js';
import { locate, type GhSide, type PrDiff } from './pr.js';
import { severityRank } from './config.js';

export interface CommitFindings {
  sha: string;
  title: string;
  findings: Finding[];
}

/** A review comment already on the PR (GET /pulls/{n}/comments). */
export interface ExistingComment {
  id: number;
  body: string;
  inReplyTo: number | null;
  login: string | null;
}

/** A review already on the PR (GET /pulls/{n}/reviews). */
export interface ExistingReview {
  id: number;
  body: string;
}

export interface PlanOptions {
  headSha: string;
  maxInline: number;
  failOn: Severity | null;
  /** Commits not reviewed (over maxCommits), said in the summary. */
  skippedCommits?: number;
  /** Repository config problems, said in the summary. */
  configProblems?: string[];
}

export interface InlineComment {
  path: string;
  line: number;
  side: GhSide;
  body: string;
}

export interface PlannedItem {
  key: string;
  finding: Finding;
  commitSha: string;
  kind: GithubCommentKind;
  path: string | null;
  line: number | null;
  side: GhSide | null;
}

export interface KnownItem {
  key: string;
  kind: GithubCommentKind;
  commentId: number | null;
  reviewId: number | null;
  state: 'open' | 'resolved';
}

export interface Annotation {
  path: string;
  start_line: number;
  end_line: number;
  annotation_level: 'notice' | 'warning' | 'failure';
  title: string;
  message: string;
}

export interface CheckOutput {
  conclusion: 'success' | 'neutral' | 'failure';
  title: string;
  summary: string;
}

export interface ReviewPlan {
  /** The review to create, or null when there is nothing new. */
  review: { commit_id: string; event: 'COMMENT'; body: string; comments: InlineComment[] } | null;
  /** What the review posts, in order: inline ones first (same order as review.comments). */
  items: PlannedItem[];
  /** Keys posted before and still found. */
  kept: string[];
  resolve: KnownItem[];
  reopen: KnownItem[];
  annotations: Annotation[];
  check: CheckOutput;
}

const LEVEL: Record<Severity, Annotation['annotation_level']> = { error: 'failure', warning: 'warning', info: 'notice' };

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function short(sha: string): string {
  return sha.slice(0, 12);
}

/** Text from a mail or a rule, safe in Markdown: no HTML, no @-mentions that would notify people. */
export function mdText(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/(^|[^\w`])@(?=[A-Za-z0-9])/g, '$1@\u200b');
}

function severityCounts(fs: readonly Finding[]): string {
  const parts: string[] = [];
  for (const s of ['error', 'warning', 'info'] as const) {
    const n = fs.filter((f) => f.severity === s).length;
    if (n) parts.push(plural(n, s === 'info' ? 'note' : s));
  }
  return parts.join(', ');
}

/** The body of an inline finding comment. */
export function findingComment(f: Finding, commit: { sha: string; title: string }): string {
  const lines = [`**${f.severity}** · \`${f.rule}\` · ${mdText(f.title)}`, '', mdText(f.message)];
  for (const n of f.notes ?? []) lines.push('', `- ${mdText(n)}`);
  const where = f.function ? ` (in \`${f.function}()\`)` : '';
  lines.push('', `<sub>patchvet, commit ${short(commit.sha)} “${mdText(commit.title)}”${where}</sub>`, marker('finding', f.fingerprint));
  return lines.join('\n');
}

/** One review-body item for a finding that cannot be an inline comment. */
export function findingItem(f: Finding, commit: { sha: string; title: string }, why: string): string {
  const at = f.file ? ` \`${f.file}${f.line !== null ? `:${f.line}` : ''}\`` : '';
  return `- **${f.severity}** \`${f.rule}\`${at} (commit ${short(commit.sha)}${why ? `, ${why}` : ''}): ${mdText(f.message)} ${marker('finding', f.fingerprint)}`;
}

/** The keys known from GitHub itself (markers in comments and review bodies). */
export function knownFromGithub(comments: readonly ExistingComment[], reviews: readonly ExistingReview[]): Map<string, KnownItem> {
  const out = new Map<string, KnownItem>();
  for (const c of comments) {
    for (const key of keysIn(c.body)) {
      if (!out.has(key)) {
        out.set(key, {
          key,
          kind: key.startsWith('mail:') ? 'mirror-inline' : 'finding-inline',
          commentId: c.id,
          reviewId: null,
          state: isResolved(c.body) ? 'resolved' : 'open',
        });
      }
    }
  }
  for (const r of reviews) {
    for (const key of keysIn(r.body)) {
      if (!out.has(key)) {
        out.set(key, { key, kind: key.startsWith('mail:') ? 'mirror-body' : 'finding-body', commentId: null, reviewId: r.id, state: 'open' });
      }
    }
  }
  return out;
}

/** Store rows and GitHub markers together: the store's ids and states win, GitHub fills gaps. */
export function knownItems(rows: readonly GithubCommentRow[], fromGithub: Map<string, KnownItem>): Map<string, KnownItem> {
  const out = new Map(fromGithub);
  for (const r of rows) {
    const g = fromGithub.get(r.key);
    out.set(r.key, {
      key: r.key,
      kind: r.kind,
      commentId: r.commentId ?? g?.commentId ?? null,
      reviewId: r.reviewId ?? g?.reviewId ?? null,
      // A comment someone resolved or reopened by hand on GitHub: what GitHub shows is the truth.
      state: g && g.kind === 'finding-inline' ? g.state : r.state,
    });
  }
  return out;
}

const MAX_BODY = 60_000;
const MAX_ANNOTATIONS = 500;

export function planReview(commits: readonly CommitFindings[], pr: PrDiff, known: Map<string, KnownItem>, o: PlanOptions): ReviewPlan {
  // Current findings, one per fingerprint; where a fingerprint shows in several commits, the
  // first one that can be placed in the PR's diff is used.
  const current = new Map<string, { f: Finding; commit: CommitFindings; at: ReturnType<typeof locate> }>();
  for (const c of commits) {
    for (const f of c.findings) {
      const key = findingKey(f.fingerprint);
      const at = locate(pr, { path: f.file, line: f.line, side: f.side, code: f.code });
      const had = current.get(key);
      if (!had || (!had.at && at)) current.set(key, { f, commit: c, at });
    }
  }

  const items: PlannedItem[] = [];
  const inline: InlineComment[] = [];
  const bodyLines: string[] = [];
  const kept: string[] = [];
  const reopen: KnownItem[] = [];
  for (const [key, { f, commit, at }] of current) {
    const k = known.get(key);
    if (k) {
      if (k.state === 'resolved') reopen.push(k);
      else kept.push(key);
      continue;
    }
    if (at && inline.length < o.maxInline) {
      inline.push({ path: at.path, line: at.line, side: at.side, body: findingComment(f, commit) });
      items.push({ key, finding: f, commitSha: commit.sha, kind: 'finding-inline', path: at.path, line: at.line, side: at.side });
    } else {
      const why = !f.file ? '' : at ? 'over the inline limit' : f.line === null ? '' : 'not in the diff';
      bodyLines.push(findingItem(f, commit, why));
      items.push({ key, finding: f, commitSha: commit.sha, kind: 'finding-body', path: f.file, line: f.line, side: null });
    }
  }
  // Inline items first, in the order of review.comments.
  items.sort((a, b) => Number(b.kind === 'finding-inline') - Number(a.kind === 'finding-inline'));

  const resolve: KnownItem[] = [];
  for (const k of known.values()) {
    if (!k.key.startsWith('finding:') || k.state !== 'open' || current.has(k.key)) continue;
    resolve.push(k);
  }

  let review: ReviewPlan['review'] = null;
  if (items.length) {
    const newFindings = items.map((i) => i.finding);
    const reviewed = commits.length;
    const head = [
      marker('review', o.headSha),
      `**patchvet** reviewed ${plural(reviewed, 'commit')} at ${short(o.headSha)}: ${plural(newFindings.length, 'new point')} (${severityCounts(newFindings)}).`,
    ];
    if (bodyLines.length) {
      head.push('', inline.length ? 'Not on a line of the diff:' : 'Findings:', '');
      let body = head.join('\n');
      let shown = 0;
      for (const l of bodyLines) {
        if (body.length + l.length + 200 > MAX_BODY) break;
        body += `\n${l}`;
        shown++;
      }
      if (shown < bodyLines.length) body += `\n\n… and ${bodyLines.length - shown} more: see the check run.`;
      review = { commit_id: o.headSha, event: 'COMMENT', body, comments: inline };
    } else {
      review = { commit_id: o.headSha, event: 'COMMENT', body: head.join('\n'), comments: inline };
    }
  }

  // Check run: every current finding, placed on head lines where possible.
  const all = [...current.values()];
  const annotations: Annotation[] = [];
  for (const { f, at } of all) {
    if (!at || at.side !== 'RIGHT' || annotations.length >= MAX_ANNOTATIONS) continue;
    annotations.push({
      path: at.path,
      start_line: at.line,
      end_line: at.line,
      annotation_level: LEVEL[f.severity],
      title: `${f.rule}: ${f.title}`,
      message: [f.message, ...(f.notes ?? [])].join('\n\n'),
    });
  }
  const findings = all.map((x) => x.f);
  // LLM findings are a second opinion: they are reported, but never fail the check (acceptance).
  const failing = o.failOn !== null && findings.some((f) => f.source !== 'llm' && severityRank(f.severity) >= severityRank(o.failOn!));
  const conclusion: CheckOutput['conclusion'] = failing ? 'failure' : findings.length ? 'neutral' : 'success';
  const title = findings.length ? `${plural(findings.length, 'finding')} (${severityCounts(findings)})` : 'No findings';
  const summary: string[] = [
    findings.length
      ? `patchvet found ${plural(findings.length, 'point')} in ${plural(commits.length, 'commit')}: ${items.length} new, ${kept.length + reopen.length} already posted, ${resolve.length} resolved since the last push.`
      : `patchvet found nothing in ${plural(commits.length, 'commit')}${resolve.length ? ` (${plural(resolve.length, 'earlier point')} resolved)` : ''}.`,
  ];
  if (findings.length) {
    summary.push('', '| severity | rule | where | commit |', '|---|---|---|---|');
    for (const { f, commit } of all.slice(0, 200)) {
      const where = f.file ? `\`${f.file}${f.line !== null ? `:${f.line}` : ''}\`` : 'commit message';
      summary.push(`| ${f.severity} | \`${f.rule}\` | ${where} | ${short(commit.sha)} |`);
    }
    if (all.length > 200) summary.push('', `… and ${all.length - 200} more.`);
  }
  if (annotations.length < all.filter((x) => x.at?.side === 'RIGHT').length) summary.push('', `Only the first ${MAX_ANNOTATIONS} are annotated.`);
  if (o.skippedCommits) summary.push('', `${plural(o.skippedCommits, 'commit')} of this pull request ${o.skippedCommits === 1 ? 'was' : 'were'} not reviewed (over the per-PR limit).`);
  if (o.configProblems?.length) summary.push('', '`.github/patchvet.yml` has problems (ignored):', ...o.configProblems.map((p) => `- ${mdText(p)}`));
  return { review, items, kept, resolve, reopen, annotations, check: { conclusion, title, summary: summary.join('\n') } };
}
