// A pull request comment forwarded to the list (opt-in per repository and allowlisted users):
// a plain-text reply threaded under the right patch mail (In-Reply-To/References), quoting the
// diff lines it is about in the list's style, so list readers (and patchvet's own anchoring)
// see where it applies. Pure; it goes out through the same outbox as patchvet's reviews.
import { createHash } from 'node:crypto';
import type { MessageRecord } from '../model.js';
import { encodeWord, headerSafe, replyToEml, type ComposedReply } from '../sinks/email.js';
import type { ReplyInput } from '../store/store.js';
import { isOurs } from './markers.js';
import type { GhSide } from './pr.js';

export interface PrComment {
  kind: 'review-comment' | 'issue-comment';
  id: number;
  login: string;
  /** Bot accounts are never forwarded. */
  userType: string | null;
  htmlUrl: string;
  body: string;
  /** Review comments: the file and line, and the diff hunk GitHub shows above the comment. */
  path?: string | null;
  line?: number | null;
  side?: GhSide | null;
  diffHunk?: string | null;
  /** Review comments answering another comment. */
  inReplyTo?: number | null;
}

/** Why a comment is not forwarded, or null when it may be. */
export function forwardRefusal(c: PrComment, allowed: readonly string[]): string | null {
  if (c.userType === 'Bot' || /\[bot\]$/i.test(c.login)) return 'written by a bot';
  if (isOurs(c.body)) return "patchvet's own comment";
  if (!allowed.map((u) => u.toLowerCase()).includes(c.login.toLowerCase())) return `${c.login} is not allowed to forward to the list`;
  if (!c.body.trim()) return 'empty comment';
  return null;
}

function compact(s: string): string {
  return s.replace(/\s+/g, '');
}

/** The last line of a review comment's diff hunk (the commented line), with its +/-/space prefix. */
function commentedLine(diffHunk: string | null | undefined): string | null {
  const lines = (diffHunk ?? '').split('\n').filter((l) => l !== '' && !l.startsWith('@@') && !l.startsWith('\\'));
  return lines.length ? lines[lines.length - 1]! : null;
}

/**
 * The patch mail a comment answers, among the PR's linked patches (in commit order): for a
 * review comment, the patch touching its file whose diff has the commented line (the last such
 * patch: the one that wrote that text), else the last patch touching the file; for a
 * conversation comment, the series' cover letter when known, else the first patch.
 */
export function choosePatch(
  c: Pick<PrComment, 'kind' | 'path' | 'diffHunk'>,
  patches: readonly MessageRecord[],
  cover: MessageRecord | null = null,
): MessageRecord | null {
  if (!patches.length) return cover;
  if (c.kind === 'issue-comment' || !c.path) return cover ?? patches[0]!;
  const touching = patches.filter((p) => p.diff?.files.some((f) => f.path === c.path || f.newPath === c.path || f.oldPath === c.path));
  if (!touching.length) return patches[patches.length - 1]!;
  const line = commentedLine(c.diffHunk);
  if (line) {
    const kind = line[0] === '+' ? 'add' : line[0] === '-' ? 'del' : 'ctx';
    const text = compact(line.slice(1));
    const has = touching.filter((p) =>
      p.diff!.files.some(
        (f) =>
          (f.path === c.path || f.newPath === c.path || f.oldPath === c.path) &&
          f.hunks.some((h) => h.lines.some((l) => compact(l.text) === text && (kind === 'ctx' || l.kind === kind))),
      ),
    );
    if (has.length) return has[has.length - 1]!;
  }
  return touching[touching.length - 1]!;
}

export interface ForwardOptions {
  /** The bot's From: address (bare). */
  fromAddress: string;
  /** The list the patch was sent to (Cc), if known. */
  list: string | null;
  domain: string;
  repo: string;
  pr: number;
  /** Outbox channel: "smtp" or "outbox". */
  channel: string;
}

function addressOf(a: { name: string; address: string }): string {
  const addr = headerSafe(a.address).replace(/[<>,;\s]/g, '');
  if (!a.name) return addr;
  const name = headerSafe(a.name);
  if (/[^\x20-\x7e]/.test(name)) return `${encodeWord(name)} <${addr}>`;
  return /^[\w .'-]+$/.test(name) ? `${name} <${addr}>` : `"${name.replace(/["\\]/g, '\\$&')}" <${addr}>`;
}

/** The forwarded comment's outbox key: one mail per comment, ever. */
export function forwardKey(repo: string, kind: PrComment['kind'], id: number): string {
  return `github-forward:${repo}:${kind}:${id}`;
}

/** Compose the list mail for a PR comment, as a reply to `patch`. */
export function composeForward(c: PrComment, patch: MessageRecord, o: ForwardOptions): ReplyInput {
  const key = forwardKey(o.repo, c.kind, c.id);
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 24);
  const messageId = `<patchvet.gh.${hash}@${o.domain}>`;
  const body: string[] = [];
  const where = c.kind === 'review-comment' && c.path ? ` on ${c.path}${c.line ? ` line ${c.line}` : ''}` : '';
  body.push(`${c.login} commented on GitHub, ${o.repo}#${o.pr}${where}:`, `<${c.htmlUrl}>`, '');
  if (c.kind === 'review-comment' && c.diffHunk) {
    const lines = c.diffHunk.split('\n').filter((l) => l !== '');
    const header = lines[0]?.startsWith('@@') ? lines[0] : null;
    const tail = lines.filter((l) => !l.startsWith('@@')).slice(-4);
    if (c.path) body.push(`> diff --git a/${c.path} b/${c.path}`, `> --- a/${c.path}`, `> +++ b/${c.path}`);
    if (header) body.push(`> ${header}`);
    if (tail.length && lines.length - (header ? 1 : 0) > tail.length) body.push('> [...]');
    for (const l of tail) body.push(`> ${l}`.trimEnd());
    body.push('');
  }
  body.push(c.body.replace(/\r\n/g, '\n').trim(), '', '-- ', 'Forwarded by patchvet from a GitHub pull request; answers on the list', 'are shown on the pull request.');

  const subject = headerSafe(patch.subject);
  const reSubject = /^re:/i.test(subject) ? subject : `Re: ${subject}`;
  const refs = [...patch.references.filter((r) => r !== patch.messageId), patch.messageId].map(headerSafe);
  const author = patch.author.address ? patch.author : patch.from;
  const to = [addressOf(author)];
  const cc = o.list ? [headerSafe(o.list)] : [];
  const display = headerSafe(`${c.login} (GitHub) via patchvet`).replace(/["\\]/g, '');
  const headers: Array<[string, string]> = [
    ['From', `"${display}" <${o.fromAddress}>`],
    ['To', to.join(', ')],
    ...(cc.length ? ([['Cc', cc.join(', ')]] as Array<[string, string]>) : []),
    ['Subject', encodeWord(reSubject)],
    ['Message-ID', messageId],
    ['In-Reply-To', headerSafe(patch.messageId)],
    ['References', refs.join(' ')],
    ['X-Patchvet', 'github-forward'],
    ['X-GitHub-Comment', headerSafe(c.htmlUrl)],
    ['MIME-Version', '1.0'],
    ['Content-Type', 'text/plain; charset=utf-8'],
    ['Content-Transfer-Encoding', '8bit'],
  ];
  const composed: ComposedReply = { headers, text: body.join('\n') + '\n', messageId, inReplyTo: patch.messageId, to, cc };
  const bare = (s: string) => /<([^<>]+)>\s*$/.exec(s)?.[1] ?? s;
  return {
    key,
    messageId,
    inReplyTo: patch.messageId,
    to: to.map(bare).map((a) => a.toLowerCase()),
    cc: cc.map(bare).map((a) => a.toLowerCase()),
    eml: Buffer.from(replyToEml(composed), 'utf8'),
    channel: o.channel,
  };
}
