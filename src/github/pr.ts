// Pull requests as patchvet sees them. Pure.
//   commitRecord()  one PR commit (message + its own diff) -> the MessageRecord the rules read,
//                   as if the commit had been sent to the list as "[PATCH i/n] title": Finding
//                   lines are then the commit's own line numbers, found by the same diff reader.
//   prDiff()        the PR's files (GET /pulls/{n}/files: one "patch" per file) -> a parsed diff
//                   and the lines GitHub accepts review comments on.
//   locate()        where a finding (or a quoted list comment) made against a commit's diff sits
//                   in the PR's diff at its head: same line with the same text, else the nearest
//                   line with the same text; null when it is not in the diff (GitHub rejects a
//                   whole review when one comment is outside it, so those go in the review body).
import type { Diff, FileDiff, MessageRecord } from '../model.js';
import { parseDiff } from '../patch/diff.js';
import { parseTrailers } from '../patch/trailers.js';
import { parseSubject } from '../thread/subject.js';

export interface PrRef {
  owner: string;
  repo: string;
  number: number;
}

export function repoName(pr: Pick<PrRef, 'owner' | 'repo'>): string {
  return `${pr.owner}/${pr.repo}`;
}

/** One commit of a pull request, as read from the API. */
export interface PrCommit {
  sha: string;
  /** The full commit message (title, blank line, body). */
  message: string;
  author: { name: string; email: string; date?: string | null };
  /** The commit's own diff as git prints it (`git show` / the diff media type); null when unknown. */
  diff: string | null;
}

/** One entry of GET /repos/{o}/{r}/pulls/{n}/files. */
export interface PrFile {
  filename: string;
  previous_filename?: string;
  status: string;
  /** The unified hunks; absent for binary files and files too large for the API. */
  patch?: string;
}

/** Title and body of a commit message. */
export function splitCommitMessage(message: string): { title: string; body: string } {
  const lines = message.replace(/\r\n/g, '\n').split('\n');
  const title = (lines[0] ?? '').trim();
  let i = 1;
  while (i < lines.length && lines[i]!.trim() === '') i++;
  return { title, body: lines.slice(i).join('\n').trimEnd() };
}

/** The pseudo Message-ID of a PR commit in findings: "github:owner/name@sha". */
export function commitId(repo: string, sha: string): string {
  return `github:${repo}@${sha}`;
}

/**
 * A PR commit as a patch mail: "[PATCH i/n] title" from its author, the message body as commit
 * message, its diff parsed by src/patch/diff.ts. `lists` are the lists the repository mirrors
 * (they count as the mail's List-Id, so list-scoped rules apply).
 */
export function commitRecord(
  c: PrCommit,
  ctx: { repo: string; index: number; total: number; lists?: readonly string[] },
): MessageRecord {
  const { title, body } = splitCommitMessage(c.message);
  const numbering = ctx.total > 1 ? ` ${ctx.index}/${ctx.total}` : '';
  const subject = `[PATCH${numbering}] ${title}`;
  const diff: Diff | null = c.diff ? parseDiff(c.diff) : null;
  const usable = diff && diff.files.length ? diff : null;
  const id = commitId(ctx.repo, c.sha);
  const author = { name: c.author.name, address: c.author.email };
  return {
    messageId: id,
    ref: { source: id, file: id, offset: 0, length: 0 },
    inReplyTo: null,
    references: [],
    from: author,
    author,
    date: c.author.date ?? null,
    subject,
    parsedSubject: parseSubject(subject),
    kind: 'patch',
    listIds: [...(ctx.lists ?? [])],
    to: [],
    cc: [],
    commitMessage: body,
    diff: usable,
    files: usable ? usable.files.map((f) => f.path) : [],
    diffstat: false,
    trailers: parseTrailers(body),
    blocks: [],
    whitespaceDamaged: false,
    damage: usable ? [...usable.damage] : [],
    automated: false,
    warnings: [],
  };
}

/**
 * A commit's diff rebuilt from the JSON form (GET /commits/{sha}: files[] with hunks only), for
 * commits too large for the diff media type. Modes are not known there: added and deleted files
 * are written as regular files.
 */
export function diffFromFiles(files: readonly PrFile[]): string {
  const out: string[] = [];
  for (const f of files) {
    if (f.patch === undefined) continue;
    const oldName = f.previous_filename ?? f.filename;
    out.push(`diff --git a/${oldName} b/${f.filename}`);
    if (f.status === 'added') out.push('new file mode 100644', '--- /dev/null', `+++ b/${f.filename}`);
    else if (f.status === 'removed') out.push('deleted file mode 100644', `--- a/${f.filename}`, '+++ /dev/null');
    else {
      if (f.status === 'renamed') out.push(`rename from ${oldName}`, `rename to ${f.filename}`);
      if (f.patch) out.push(`--- a/${oldName}`, `+++ b/${f.filename}`);
    }
    if (f.patch) out.push(f.patch.replace(/\n$/, ''));
  }
  return out.length ? out.join('\n') + '\n' : '';
}

// ---------------------------------------------------------------- the PR's diff

export type GhSide = 'LEFT' | 'RIGHT';

export interface PrDiff {
  /** Parsed per path (new path; old path for deletions). */
  files: Map<string, FileDiff>;
  /** Old path -> new path of renamed files. */
  renamed: Map<string, string>;
  /** Files GitHub gave no hunks for (binary, or too large): nothing can be commented there. */
  withoutPatch: string[];
}

export function prDiff(files: readonly PrFile[]): PrDiff {
  const out: PrDiff = { files: new Map(), renamed: new Map(), withoutPatch: [] };
  for (const f of files) {
    if (f.previous_filename && f.previous_filename !== f.filename) out.renamed.set(f.previous_filename, f.filename);
    if (!f.patch) {
      out.withoutPatch.push(f.filename);
      continue;
    }
    const parsed = parseDiff(diffFromFiles([f]));
    const file = parsed.files[0];
    if (file) out.files.set(file.path, file);
  }
  return out;
}

export interface Located {
  path: string;
  line: number;
  side: GhSide;
}

/** Whitespace-insensitive form of a code line. */
function compact(s: string): string {
  return s.replace(/\s+/g, '');
}

/**
 * Where `target` (a line of a commit's diff: path, line number on its side, the code on it) is
 * in the PR's diff. Added and context lines are commented on the RIGHT (head) side, deleted
 * lines on the LEFT (base) side.
 */
export function locate(
  pr: PrDiff,
  target: { path: string | null; line: number | null; side: 'new' | 'old' | null; code: string | null },
): Located | null {
  if (!target.path || target.line === null) return null;
  const path = pr.files.has(target.path) ? target.path : pr.renamed.get(target.path) ?? target.path;
  const file = pr.files.get(path);
  if (!file) return null;
  const side = target.side ?? 'new';
  const want = target.code === null ? null : compact(target.code);
  type Cand = { line: number; side: GhSide; distance: number };
  const exact: Cand[] = [];
  const same: Cand[] = [];
  for (const h of file.hunks) {
    for (const l of h.lines) {
      let at: { line: number; side: GhSide } | null = null;
      let own: number | null = null;
      if (side === 'new' && l.kind !== 'del' && l.newLine !== null) {
        at = { line: l.newLine, side: 'RIGHT' };
        own = l.newLine;
      } else if (side === 'old' && l.kind === 'del' && l.oldLine !== null) {
        at = { line: l.oldLine, side: 'LEFT' };
        own = l.oldLine;
      } else if (side === 'old' && l.kind === 'ctx' && l.oldLine !== null && l.newLine !== null) {
        at = { line: l.newLine, side: 'RIGHT' };
        own = l.oldLine;
      }
      if (!at || own === null) continue;
      const textOk = want === null || compact(l.text) === want;
      if (own === target.line && textOk) exact.push({ ...at, distance: 0 });
      else if (want !== null && want !== '' && textOk) same.push({ ...at, distance: Math.abs(own - target.line) });
    }
  }
  const best = exact[0] ?? same.sort((a, b) => a.distance - b.distance)[0];
  return best ? { path, line: best.line, side: best.side } : null;
}

/** The text of the PR diff's line at a located place (for quoting), or null. */
export function lineText(pr: PrDiff, at: Located): string | null {
  const file = pr.files.get(at.path);
  for (const h of file?.hunks ?? []) {
    for (const l of h.lines) {
      if (at.side === 'RIGHT' ? l.newLine === at.line && l.kind !== 'del' : l.oldLine === at.line && l.kind === 'del') return l.text;
    }
  }
  return null;
}
