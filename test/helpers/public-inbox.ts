// Build public-inbox archives with plain git, laid out as public-inbox 1.9 writes them, for tests:
//   v2: <dir>/git/<N>.git bare repositories (epochs), refs/heads/master, one commit per message whose
//       tree holds only `m` (the raw message); a removal commit holds only `d`.
//   v1: <dir> is one bare repository; each message is the file "xx/y{38}" (SHA-1 of the Message-ID
//       without <>, split 2/38), the tree growing by one file per commit.
// Commits carry the mail's From/Date as author (like public-inbox) and the inbox as committer.
// Also: building an archive with the real public-inbox tools (public-inbox-init / -mda), when installed.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface Ident {
  name: string;
  email: string;
}

/** What public-inbox takes from a mail for its commit. */
export interface MailMeta {
  author: Ident;
  /** git's raw date: "<seconds> <+zzzz>". */
  date: string;
  subject: string;
  /** Without the angle brackets; null when the mail has none. */
  messageId: string | null;
}

const BASE_ENV: NodeJS.ProcessEnv = (() => {
  const env: NodeJS.ProcessEnv = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_TERMINAL_PROMPT: '0' };
  for (const k of ['GIT_DIR', 'GIT_WORK_TREE', 'GIT_INDEX_FILE', 'GIT_OBJECT_DIRECTORY', 'GIT_ALTERNATE_OBJECT_DIRECTORIES']) delete env[k];
  return env;
})();

function git(gitDir: string, args: string[], input?: Buffer | string, env?: NodeJS.ProcessEnv): string {
  return execFileSync('git', ['--git-dir', gitDir, ...args], {
    input,
    env: { ...BASE_ENV, ...env },
    maxBuffer: 512 * 1024 * 1024,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
    .toString('utf8')
    .trim();
}

function gitOk(gitDir: string, args: string[]): boolean {
  try {
    git(gitDir, args);
    return true;
  } catch {
    return false;
  }
}

function initBare(gitDir: string): void {
  mkdirSync(gitDir, { recursive: true });
  execFileSync('git', ['init', '--bare', '-q', gitDir], { env: BASE_ENV });
  git(gitDir, ['symbolic-ref', 'HEAD', 'refs/heads/master']);
  // no background gc changing the object store under a test
  git(gitDir, ['config', 'gc.auto', '0']);
}

// ---------------------------------------------------------------- reading the mail

function headerBlock(raw: Buffer): string {
  const text = raw.toString('latin1');
  const m = /\r?\n\r?\n/.exec(text);
  return (m ? text.slice(0, m.index) : text).replace(/\r?\n[ \t]+/g, ' ');
}

function header(raw: Buffer, name: string): string | null {
  const re = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im');
  const m = re.exec(headerBlock(raw));
  return m ? Buffer.from(m[1], 'latin1').toString('utf8').trim() : null;
}

/** RFC 2047 encoded words (B and Q, UTF-8 or Latin-1): enough for author names. */
function decodeWords(s: string): string {
  return s.replace(/=\?([^?]+)\?([bqBQ])\?([^?]*)\?=\s*/g, (_all, charset: string, enc: string, text: string) => {
    const bytes =
      enc.toUpperCase() === 'B'
        ? Buffer.from(text, 'base64')
        : Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
    return /^utf-?8$/i.test(charset) ? bytes.toString('utf8') : bytes.toString('latin1');
  });
}

export function parseAddress(value: string | null): Ident {
  const v = (value ?? '').trim();
  let name = '';
  let email = '';
  let m: RegExpExecArray | null;
  if ((m = /^(.*?)<([^>]*)>/.exec(v))) {
    name = m[1];
    email = m[2];
  } else if ((m = /^(\S+@\S+)\s*\((.*)\)\s*$/.exec(v))) {
    email = m[1];
    name = m[2];
  } else {
    email = v;
  }
  name = decodeWords(name).replace(/^\s*"|"\s*$/g, '').replace(/[<>\n]/g, '').trim();
  email = email.replace(/[<>\s]/g, '');
  if (!email) email = 'unknown@example.invalid';
  if (!name) name = email.split('@')[0] || 'unknown';
  return { name, email };
}

function gitDate(dateHeader: string | null): string {
  const ms = dateHeader ? Date.parse(dateHeader.replace(/\s*\([^)]*\)\s*$/, '')) : NaN;
  if (Number.isNaN(ms)) return `${Math.floor(Date.now() / 1000)} +0000`;
  const tz = /([+-]\d{4})\s*$/.exec(dateHeader!.replace(/\s*\([^)]*\)\s*$/, ''));
  return `${Math.max(0, Math.floor(ms / 1000))} ${tz ? tz[1] : '+0000'}`;
}

export function mailMeta(raw: Buffer): MailMeta {
  const mid = header(raw, 'Message-ID');
  const m = mid ? /<([^>]+)>/.exec(mid) : null;
  return {
    author: parseAddress(header(raw, 'From')),
    date: gitDate(header(raw, 'Date')),
    subject: decodeWords(header(raw, 'Subject') ?? '') || '(no subject)',
    messageId: m ? m[1] : mid || null,
  };
}

/** public-inbox v1's path for a Message-ID (with or without <>). */
export function v1Path(messageId: string): string {
  const m = /<([^>]+)>/.exec(messageId);
  const hex = createHash('sha1').update(Buffer.from(m ? m[1] : messageId, 'utf8')).digest('hex');
  return `${hex.slice(0, 2)}/${hex.slice(2)}`;
}

// ---------------------------------------------------------------- commits

interface CommitInfo {
  author: Ident;
  authorDate: string;
  committer: Ident;
  committerDate: string;
  message: string;
}

function readCommit(gitDir: string, commit: string): CommitInfo & { tree: string } {
  const out = git(gitDir, ['log', '-1', '--date=raw', '--format=%an%x00%ae%x00%ad%x00%cn%x00%ce%x00%cd%x00%T%x00%B', commit]);
  const [an, ae, ad, cn, ce, cd, tree, ...msg] = out.split('\0');
  return { author: { name: an, email: ae }, authorDate: ad, committer: { name: cn, email: ce }, committerDate: cd, tree, message: msg.join('\0') };
}

function commitTree(gitDir: string, tree: string, parent: string | null, info: CommitInfo): string {
  const args = ['commit-tree', tree, ...(parent ? ['-p', parent] : []), '-F', '-'];
  return git(gitDir, args, `${info.message.trimEnd()}\n`, {
    GIT_AUTHOR_NAME: info.author.name,
    GIT_AUTHOR_EMAIL: info.author.email,
    GIT_AUTHOR_DATE: info.authorDate,
    GIT_COMMITTER_NAME: info.committer.name,
    GIT_COMMITTER_EMAIL: info.committer.email,
    GIT_COMMITTER_DATE: info.committerDate,
  });
}

function tipOf(gitDir: string): string | null {
  try {
    return git(gitDir, ['rev-parse', '-q', '--verify', 'refs/heads/master^{commit}']) || null;
  } catch {
    return null;
  }
}

function commitsOf(gitDir: string): string[] {
  const tip = tipOf(gitDir);
  if (!tip) return [];
  return git(gitDir, ['rev-list', '--reverse', tip]).split('\n').filter(Boolean);
}

function nowRaw(): string {
  return `${Math.floor(Date.now() / 1000)} +0000`;
}

export interface RewriteOptions {
  /** Index (oldest first) of the commit to drop. Default: the last one. */
  drop?: number;
  /** Run `git gc --prune=now` afterwards so the dropped commits are really gone. Default false. */
  prune?: boolean;
}

export interface RewriteResult {
  dropped: string;
  /** The new tip (null when the repository is left empty). */
  tip: string | null;
}

/**
 * Drop one commit and re-create those after it with the same author, committer, dates and message
 * on a new chain, then force the ref there: what public-inbox-purge/-edit do (git fast-export |
 * fast-import keeps the commits before the change, so those keep their ids).
 * `treeFor` gives the tree of a re-created commit (v1 drops the removed message's file).
 */
function rewriteRepo(gitDir: string, opts: RewriteOptions, treeFor: (commit: string, tree: string) => string): RewriteResult {
  const commits = commitsOf(gitDir);
  if (commits.length === 0) throw new Error(`rewrite: ${gitDir} has no commits`);
  const i = opts.drop ?? commits.length - 1;
  if (i < 0 || i >= commits.length) throw new Error(`rewrite: no commit ${i} in ${gitDir} (${commits.length} commits)`);
  const dropped = commits[i];
  let parent = i > 0 ? commits[i - 1] : null;
  for (const c of commits.slice(i + 1)) {
    const info = readCommit(gitDir, c);
    parent = commitTree(gitDir, treeFor(c, info.tree), parent, info);
  }
  if (parent) git(gitDir, ['update-ref', 'refs/heads/master', parent]);
  else git(gitDir, ['update-ref', '-d', 'refs/heads/master']);
  if (opts.prune) {
    git(gitDir, ['reflog', 'expire', '--expire=now', '--all']);
    git(gitDir, ['gc', '-q', '--prune=now']);
  }
  return { dropped, tip: parent };
}

export interface TestInboxOptions {
  /** The committer public-inbox writes (the inbox's name and address). */
  committer?: Ident;
}

const DEFAULT_COMMITTER: Ident = { name: 'test-inbox', email: 'test-inbox@example.org' };

// ---------------------------------------------------------------- v2

export class TestInboxV2 {
  readonly version = 2;
  /** The epoch new messages go to. */
  epoch = 0;
  private readonly committer: Ident;

  private constructor(
    readonly dir: string,
    opts: TestInboxOptions,
  ) {
    this.committer = opts.committer ?? DEFAULT_COMMITTER;
  }

  /** A new, empty v2 inbox at `dir` with epoch 0 (git/0.git). */
  static create(dir: string, opts: TestInboxOptions = {}): TestInboxV2 {
    mkdirSync(join(dir, 'git'), { recursive: true });
    initBare(join(dir, 'git', '0.git'));
    return new TestInboxV2(dir, opts);
  }

  gitDir(epoch = this.epoch): string {
    return join(this.dir, 'git', `${epoch}.git`);
  }

  /** Commit one message as blob `m`; returns the commit id. */
  append(message: Buffer): string {
    const meta = mailMeta(message);
    const blob = git(this.gitDir(), ['hash-object', '-w', '--stdin'], message);
    return this.commit(`100644 blob ${blob}\tm\n`, { author: meta.author, authorDate: meta.date, message: meta.subject });
  }

  /** A removal as public-inbox writes it: a commit whose tree holds only `d` (the removed message). */
  remove(message: Buffer): string {
    const blob = git(this.gitDir(), ['hash-object', '-w', '--stdin'], message);
    return this.commit(`100644 blob ${blob}\td\n`, { author: this.committer, authorDate: nowRaw(), message: 'rm' });
  }

  /**
   * A damaged commit: 'no-m' has a tree without `m` or `d`; 'missing-blob' names an `m` blob that
   * is not in the object store.
   */
  appendCorrupt(kind: 'no-m' | 'missing-blob' = 'no-m'): string {
    let entry: string;
    if (kind === 'no-m') {
      const blob = git(this.gitDir(), ['hash-object', '-w', '--stdin'], 'not a message\n');
      entry = `100644 blob ${blob}\tx\n`;
    } else {
      const absent = createHash('sha1').update(`absent ${Date.now()} ${Math.random()}`).digest('hex');
      entry = `100644 blob ${absent}\tm\n`;
    }
    return this.commit(entry, { author: this.committer, authorDate: nowRaw(), message: `corrupt (${kind})` }, true);
  }

  /** Start the next epoch (git/<N+1>.git, empty until the next append); returns its number. */
  rollEpoch(): number {
    this.epoch++;
    initBare(this.gitDir());
    return this.epoch;
  }

  /** Rewrite one epoch's history (default: the current one), see RewriteOptions. */
  rewrite(opts: RewriteOptions & { epoch?: number } = {}): RewriteResult {
    return rewriteRepo(this.gitDir(opts.epoch ?? this.epoch), opts, (_c, tree) => tree);
  }

  commits(epoch = this.epoch): string[] {
    return commitsOf(this.gitDir(epoch));
  }

  tip(epoch = this.epoch): string | null {
    return tipOf(this.gitDir(epoch));
  }

  private commit(treeEntries: string, info: { author: Ident; authorDate: string; message: string }, missingOk = false): string {
    const gitDir = this.gitDir();
    const tree = git(gitDir, ['mktree', ...(missingOk ? ['--missing'] : [])], treeEntries);
    const parent = tipOf(gitDir);
    const commit = commitTree(gitDir, tree, parent, { ...info, committer: this.committer, committerDate: nowRaw() });
    git(gitDir, ['update-ref', 'refs/heads/master', commit, ...(parent ? [parent] : [])]);
    return commit;
  }
}

// ---------------------------------------------------------------- v1

/** A tree from "xx/y38" paths -> blob ids (two levels, as v1 stores them). */
function mkTreeV1(gitDir: string, files: Map<string, string>): string {
  const dirs = new Map<string, string[]>();
  for (const [path, blob] of files) {
    const [d, f] = path.split('/');
    if (!dirs.has(d)) dirs.set(d, []);
    dirs.get(d)!.push(`100644 blob ${blob}\t${f}\n`);
  }
  let top = '';
  for (const [d, entries] of [...dirs].sort()) {
    const sub = git(gitDir, ['mktree'], entries.join(''));
    top += `040000 tree ${sub}\t${d}\n`;
  }
  return git(gitDir, ['mktree'], top);
}

function filesOf(gitDir: string, treeish: string | null): Map<string, string> {
  const files = new Map<string, string>();
  if (!treeish) return files;
  for (const line of git(gitDir, ['ls-tree', '-r', treeish]).split('\n')) {
    const m = /^\d+ blob ([0-9a-f]+)\t(.*)$/.exec(line);
    if (m) files.set(m[2], m[1]);
  }
  return files;
}

export class TestInboxV1 {
  readonly version = 1;
  private readonly committer: Ident;

  private constructor(
    readonly dir: string,
    opts: TestInboxOptions,
  ) {
    this.committer = opts.committer ?? DEFAULT_COMMITTER;
  }

  /** A new, empty v1 inbox: `dir` is the bare repository. */
  static create(dir: string, opts: TestInboxOptions = {}): TestInboxV1 {
    initBare(dir);
    return new TestInboxV1(dir, opts);
  }

  /** Commit one message at its 2/38 path; returns the commit id. Throws when it has no Message-ID. */
  append(message: Buffer): string {
    const meta = mailMeta(message);
    if (!meta.messageId) throw new Error('v1 inboxes store messages by Message-ID: this one has none');
    const blob = git(this.dir, ['hash-object', '-w', '--stdin'], message);
    const files = filesOf(this.dir, tipOf(this.dir));
    files.set(v1Path(meta.messageId), blob);
    return this.commit(files, { author: meta.author, authorDate: meta.date, message: meta.subject });
  }

  /** A removal: the commit deletes the message's file. */
  remove(message: Buffer): string {
    const meta = mailMeta(message);
    const files = filesOf(this.dir, tipOf(this.dir));
    if (!meta.messageId || !files.delete(v1Path(meta.messageId))) throw new Error('remove: message not in the inbox');
    return this.commit(files, { author: this.committer, authorDate: nowRaw(), message: 'rm' });
  }

  /** Drop one commit's message from history (the later commits lose its file too). */
  rewrite(opts: RewriteOptions = {}): RewriteResult {
    const commits = commitsOf(this.dir);
    const target = commits[opts.drop ?? commits.length - 1];
    const added = target
      ? git(this.dir, ['diff-tree', '-r', '--root', '--no-commit-id', '--name-only', '--diff-filter=A', target]).split('\n').filter(Boolean)
      : [];
    return rewriteRepo(this.dir, opts, (_c, tree) => {
      const files = filesOf(this.dir, tree);
      for (const p of added) files.delete(p);
      return mkTreeV1(this.dir, files);
    });
  }

  commits(): string[] {
    return commitsOf(this.dir);
  }

  tip(): string | null {
    return tipOf(this.dir);
  }

  private commit(files: Map<string, string>, info: { author: Ident; authorDate: string; message: string }): string {
    const tree = mkTreeV1(this.dir, files);
    const parent = tipOf(this.dir);
    const commit = commitTree(this.dir, tree, parent, { ...info, committer: this.committer, committerDate: nowRaw() });
    git(this.dir, ['update-ref', 'refs/heads/master', commit, ...(parent ? [parent] : [])]);
    return commit;
  }
}

// ---------------------------------------------------------------- the real public-inbox tools

function onPath(bin: string): boolean {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    if (!d) continue;
    try {
      accessSync(join(d, bin), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/**
 * Throws when public-inbox-init or public-inbox-mda is not on PATH: the test that proves our layout
 * matches the real tool must fail, not skip, on a machine without it.
 */
export function requirePublicInboxTools(): void {
  const missing = ['public-inbox-init', 'public-inbox-mda'].filter((b) => !onPath(b));
  if (missing.length > 0) {
    throw new Error(
      `${missing.join(' and ')} not found on PATH: install them with \`apt-get install public-inbox\` ` +
        '(CI installs it); this test checks the archive layout against the real tool',
    );
  }
}

export interface RealInbox {
  dir: string;
  address: string;
  /** Environment for further public-inbox commands on this inbox (HOME, PI_CONFIG, PI_EMERGENCY). */
  env: NodeJS.ProcessEnv;
  /** Deliver one more mail with public-inbox-mda. */
  deliver(message: Buffer): void;
}

/**
 * An inbox made by public-inbox-init (-V1 or -V2) under `root` (inbox in root/inbox, a private HOME
 * and config in root/home), with spam checks off. `address` must be in the mails' To or Cc, or
 * public-inbox-mda drops them (into its emergency folder, which deliver() checks).
 */
export function createRealInbox(root: string, opts: { version: 1 | 2; address?: string; name?: string }): RealInbox {
  requirePublicInboxTools();
  const address = opts.address ?? 'xen-devel@lists.xenproject.org';
  const name = opts.name ?? 'test';
  const home = join(root, 'home');
  const emergency = join(root, 'emergency');
  mkdirSync(home, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...BASE_ENV,
    HOME: home,
    PI_CONFIG: join(home, '.public-inbox', 'config'),
    PI_EMERGENCY: emergency,
  };
  const dir = join(root, 'inbox');
  execFileSync('public-inbox-init', [`-V${opts.version}`, name, dir, `http://example.org/${name}`, address], { env, stdio: 'pipe' });
  execFileSync('git', ['config', '-f', env.PI_CONFIG!, 'publicinboxmda.spamcheck', 'none'], { env });
  const emergencyCount = (): number => {
    let n = 0;
    for (const sub of ['new', 'cur', 'tmp']) {
      const d = join(emergency, sub);
      if (existsSync(d)) n += readdirSync(d).length;
    }
    return n;
  };
  return {
    dir,
    address,
    env,
    deliver(message: Buffer): void {
      const before = emergencyCount();
      execFileSync('public-inbox-mda', [], { input: message, env: { ...env, ORIGINAL_RECIPIENT: address }, stdio: ['pipe', 'pipe', 'pipe'] });
      if (emergencyCount() > before) {
        throw new Error(`public-inbox-mda did not accept the mail (kept in ${emergency}): is ${address} in its To or Cc?`);
      }
    },
  };
}
