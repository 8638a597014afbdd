// A real Dovecot IMAP server for tests: its own config in a temp dir, listening only on 127.0.0.1 on a
// free port, plaintext auth (loopback only), one passwd-file user, maildir under the temp dir.
// `dovecot -F -c <conf>` runs in the foreground as our child and is killed at the end (and on exit).
//
// Dovecot refuses to run its login processes as root and refuses uid 0 for mail users, so when the
// tests run as root (containers, CI) the login/internal users are Debian's `dovenull`/`dovecot` and
// mail is accessed as `dovecot` (the temp dirs are handed to it); as a normal user everything runs as
// that user.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';

export const DOVECOT_MISSING =
  'Dovecot is not installed, and the IMAP tests need a real IMAP server: install it with ' +
  '`apt-get install dovecot-imapd` (Debian/Ubuntu; CI does this when it is missing)';

/** Path of the dovecot binary, or null. PATCHVET_DOVECOT names it explicitly (e.g. a build of your own). */
export function dovecotBinary(): string | null {
  const explicit = process.env.PATCHVET_DOVECOT;
  if (explicit) return existsSync(explicit) ? explicit : null;
  const dirs = ['/usr/sbin', '/usr/local/sbin', '/sbin', ...(process.env.PATH ?? '').split(':').filter(Boolean)];
  for (const d of dirs) {
    const p = join(d, 'dovecot');
    if (existsSync(p)) return p;
  }
  return null;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

function passwdEntry(name: string): PasswdEntry | null {
  let text = '';
  try {
    text = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && f.length >= 4) return { name, uid: Number(f[2]), gid: Number(f[3]) };
  }
  return null;
}

/** Who Dovecot's processes run as: see the header comment. */
function dovecotUsers(): { internal: string; login: string; mail: { uid: number; gid: number } } {
  if (process.getuid?.() !== 0) {
    const me = userInfo();
    return { internal: me.username, login: me.username, mail: { uid: me.uid, gid: me.gid } };
  }
  // The auth process (internal user) reads the passwd-file; the mail processes run as the same user.
  const internal = passwdEntry('dovecot') ?? passwdEntry('nobody');
  const login = passwdEntry('dovenull') ?? internal;
  if (!internal || !login) {
    throw new Error('running as root, Dovecot needs an unprivileged user (dovecot, dovenull or nobody) in /etc/passwd');
  }
  return { internal: internal.name, login: login.name, mail: { uid: internal.uid, gid: internal.gid } };
}

function signalGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    /* already gone */
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolve when a TCP connection to host:port gets an IMAP "* OK" greeting; false on any failure. */
function greets(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    let buf = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\n')) done(buf.startsWith('* OK'));
    });
    sock.on('error', () => done(false));
    sock.on('close', () => done(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** true when p settles within ms (the timer is cleared either way, so nothing lingers). */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true), t]);
  } finally {
    clearTimeout(timer);
  }
}

export interface DovecotOptions {
  user?: string;
  password?: string;
}

export class Dovecot {
  readonly host = '127.0.0.1';
  readonly user: string;
  readonly password: string;
  readonly dir: string;
  readonly mailRoot: string;
  readonly confPath: string;
  port = 0;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private output = '';
  /** Process group of the running Dovecot (its master's pid): signals go to all its processes at once. */
  private pgid: number | null = null;
  private readonly killOnExit = () => {
    if (this.pgid) signalGroup(this.pgid, 'SIGKILL');
  };

  constructor(opts: DovecotOptions = {}) {
    this.user = opts.user ?? 'alice';
    this.password = opts.password ?? 'correct horse battery staple';
    this.dir = mkdtempSync(join(tmpdir(), 'patchvet-dovecot-'));
    this.mailRoot = join(this.dir, 'mail');
    this.confPath = join(this.dir, 'dovecot.conf');
  }

  get running(): boolean {
    return this.pgid !== null;
  }

  /** imap://user@127.0.0.1:port/MAILBOX, as the serve config would say it. */
  url(mailbox = 'INBOX'): string {
    return `imap://${encodeURIComponent(this.user)}@${this.host}:${this.port}/${encodeURIComponent(mailbox)}`;
  }

  /** Maildir of the test user (INBOX at its root, other mailboxes as ".name" subfolders). */
  get maildir(): string {
    return join(this.mailRoot, this.user);
  }

  /** Dovecot's log so far (its log file plus anything it printed itself). */
  log(): string {
    let file = '';
    try {
      file = readFileSync(join(this.dir, 'dovecot.log'), 'utf8');
    } catch {
      /* not written yet */
    }
    return file + this.output;
  }

  private writeConfig(): void {
    const users = dovecotUsers();
    const d = this.dir;
    // The mail processes run as users.mail: they must be able to reach and write the mail root.
    chmodSync(d, 0o755);
    mkdirSync(this.mailRoot, { recursive: true });
    mkdirSync(join(d, 'run'), { recursive: true });
    mkdirSync(join(d, 'state'), { recursive: true });
    // {PLAIN} scheme: this is a throwaway test account. Dovecot's auth process (the internal user,
    // which is also the mail user here) reads the file.
    const passwd = join(d, 'passwd');
    writeFileSync(passwd, `${this.user}:{PLAIN}${this.password}::::::\n`, { mode: 0o600 });
    if (process.getuid?.() === 0) {
      chownSync(this.mailRoot, users.mail.uid, users.mail.gid);
      chownSync(passwd, users.mail.uid, users.mail.gid);
    }
    const conf = `# written by test/helpers/dovecot.ts
instance_name = patchvet-test-${this.port}
protocols = imap
listen = 127.0.0.1
base_dir = ${d}/run
state_dir = ${d}/state
log_path = ${d}/dovecot.log
info_log_path = ${d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
# tests log in with a wrong password on purpose: no delay, and no growing penalty for 127.0.0.1
# (the anvil listener below is switched off, as Dovecot's documentation says to)
auth_failure_delay = 0
default_internal_user = ${users.internal}
default_login_user = ${users.login}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:${this.mailRoot}/%u
mailbox_idle_check_interval = 1 secs
passdb {
  driver = passwd-file
  args = scheme=PLAIN ${d}/passwd
}
userdb {
  driver = static
  args = uid=${users.mail.uid} gid=${users.mail.gid} home=${this.mailRoot}/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = ${this.port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
`;
    writeFileSync(this.confPath, conf);
  }

  /** Start Dovecot (again, on the same port after stop()); resolves when it greets on the port. */
  async start(): Promise<void> {
    const bin = dovecotBinary();
    if (!bin) throw new Error(DOVECOT_MISSING);
    if (this.pgid) throw new Error('Dovecot is already running');
    if (!this.port) this.port = await freePort();
    this.writeConfig();
    // Its own process group, so that stop() reaches the imap processes too: a master that dies alone
    // leaves them serving their clients for a while, which is not what "the server went down" means.
    const child = spawn(bin, ['-F', '-c', this.confPath], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child = child;
    this.pgid = child.pid ?? null;
    process.on('exit', this.killOnExit);
    child.stdout!.on('data', (d) => (this.output += d));
    child.stderr!.on('data', (d) => (this.output += d));
    let exitInfo: string | null = null;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, sig) => {
        exitInfo = `exit code ${code}, signal ${sig}`;
        if (this.child === child) this.child = null;
        resolve();
      });
      child.once('error', (err) => {
        exitInfo = String(err);
        if (this.child === child) this.child = null;
        resolve();
      });
    });
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (exitInfo) break;
      if (await greets(this.host, this.port, 1000)) return;
      await sleep(50);
    }
    const why = exitInfo ? `it stopped (${exitInfo})` : 'it did not greet within 15 s';
    await this.stop();
    throw new Error(`Dovecot did not start on 127.0.0.1:${this.port}: ${why}\n${this.log()}`);
  }

  /** Stop Dovecot: SIGTERM to all its processes (SIGKILL after 5 s); resolves when every one has gone. */
  async stop(): Promise<void> {
    const pgid = this.pgid;
    if (!pgid) return;
    signalGroup(pgid, 'SIGTERM');
    const deadline = Date.now() + 5000;
    while (groupAlive(pgid) && Date.now() < deadline) await sleep(20);
    if (groupAlive(pgid)) {
      signalGroup(pgid, 'SIGKILL');
      const hard = Date.now() + 2000;
      while (groupAlive(pgid) && Date.now() < hard) await sleep(20);
    }
    await within(this.exited, 2000);
    this.pgid = null;
    process.removeListener('exit', this.killOnExit);
  }

  /** Stop and remove the temp dir. */
  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** A logged-in imapflow client for preparing and checking the mailbox (close it with logout()). */
  async client(password = this.password): Promise<ImapFlow> {
    const c = new ImapFlow({
      host: this.host,
      port: this.port,
      secure: false,
      auth: { user: this.user, pass: password },
      logger: false,
      disableAutoIdle: true,
    });
    c.on('error', () => {
      /* test clients: failures surface through the awaited calls */
    });
    await c.connect();
    return c;
  }

  /** IMAP APPEND each message to `mailbox` (created when missing); returns the UIDs. */
  async append(mailbox: string, messages: Buffer[], flags: string[] = []): Promise<{ uidValidity: bigint; uids: number[] }> {
    const c = await this.client();
    try {
      if (mailbox.toUpperCase() !== 'INBOX') {
        const list = await c.list();
        if (!list.some((m) => m.path === mailbox)) await c.mailboxCreate(mailbox);
      }
      const uids: number[] = [];
      let uidValidity = 0n;
      for (const m of messages) {
        const r = await c.append(mailbox, m, flags);
        if (!r || r.uid === undefined || r.uidValidity === undefined) throw new Error('APPEND returned no UID (UIDPLUS)');
        uids.push(r.uid);
        uidValidity = r.uidValidity;
      }
      return { uidValidity, uids };
    } finally {
      await c.logout().catch(() => c.close());
    }
  }

  /** Stored flags of every message in `mailbox`, by UID (read with EXAMINE, so reading changes nothing; \Recent is per session, left out). */
  async flags(mailbox: string): Promise<Map<number, string[]>> {
    const c = await this.client();
    try {
      await c.mailboxOpen(mailbox, { readOnly: true });
      const out = new Map<number, string[]>();
      for (const m of await c.fetchAll('1:*', { uid: true, flags: true })) out.set(m.uid, [...(m.flags ?? [])].filter((f) => f !== '\\Recent').sort());
      return out;
    } finally {
      await c.logout().catch(() => c.close());
    }
  }
}

/** Start a fresh Dovecot; throws (with `apt-get install dovecot-imapd`) when it is not installed. */
export async function startDovecot(opts: DovecotOptions = {}): Promise<Dovecot> {
  if (!dovecotBinary()) throw new Error(DOVECOT_MISSING);
  const d = new Dovecot(opts);
  try {
    await d.start();
  } catch (err) {
    await d.destroy();
    throw err;
  }
  return d;
}
