// patchvet.yml for `serve`: defaults, the contract's keys, extensions, secrets from the
// environment, and errors that name the key and say what to write.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createSources } from '../../src/serve/service.js';
import { pino } from 'pino';
import { ConfigError, loadConfig, parseConfig, parseDuration, parseListen, redactedConfig, bareAddress } from '../../src/serve/config.js';

function problems(text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(text, { env });
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('serve config', () => {
  test('an empty file gives the documented defaults', () => {
    const c = parseConfig('', { env: {} });
    expect(c.store).toBe(`sqlite:${resolve('patchvet.db')}`);
    expect(c.sources).toEqual([]);
    expect(c.lists).toEqual([]);
    expect(c.delivery.email.mode).toBe('outbox');
    expect(c.delivery.email.outbox).toBe(resolve('outbox'));
    expect(c.delivery.email.smtp).toBeNull();
    expect(c.http).toEqual({ host: '127.0.0.1', port: 3000 });
    expect(c.maxAgeSeconds).toBe(7 * 86400);
    expect(c.defaultRules).toBe(true);
  });

  test('the CONTRACT example reads as written', () => {
    const c = parseConfig(
      `store: sqlite:./patchvet.db
sources:
  - {type: public-inbox, path: /srv/inbox/xen-devel, every: 60s}
  - {type: imap, url: imaps://user@host/INBOX}
  - {type: maildir, path: ~/Maildir/xen-devel}
  - {type: lmtp, listen: 127.0.0.1:2424}
lists:
  - {address: xen-devel@lists.xenproject.org, rules: [xen, common], reply: off}
delivery:
  email: {mode: smtp, outbox: ./outbox, smtp: smtp://127.0.0.1:25, from: "patchvet <bot@example.org>"}
http: {listen: 127.0.0.1:3000}
`,
      { env: { PATCHVET_IMAP_PASSWORD: 's3cret' } },
    );
    expect(c.sources.map((s) => s.type)).toEqual(['public-inbox', 'imap', 'maildir', 'lmtp']);
    expect(c.sources[0]).toMatchObject({ path: '/srv/inbox/xen-devel', everySeconds: 60, every: '60s' });
    expect(c.sources[1]).toMatchObject({ url: 'imaps://user@host/INBOX', password: 's3cret' });
    expect(c.sources[2]).toMatchObject({ path: join(homedir(), 'Maildir/xen-devel') });
    expect(c.sources[3]).toMatchObject({ host: '127.0.0.1', port: 2424 });
    // YAML 1.2: `off` is the string "off", not false.
    expect(c.lists[0]).toMatchObject({ address: 'xen-devel@lists.xenproject.org', rules: ['xen', 'common'], reply: 'off', mute: [] });
    expect(c.delivery.email).toMatchObject({ mode: 'smtp', smtp: 'smtp://127.0.0.1:25', fromAddress: 'bot@example.org', domain: 'example.org' });
  });

  test('extensions: mute, embargo, rate limit, per-list max age, retry, lease', () => {
    const c = parseConfig(
      `lists:
  - address: Xen-Devel@Lists.Xenproject.org
    reply: list
    mute: ["*@bots.example.org", Syzbot@example.com]
    embargoHours: 12
    rateLimit: {perHour: 5}
    maxAge: off
maxAge: 36h
delivery:
  email:
    from: "patchvet <bot@example.org>"
    lease: 2m
    retry: {initialDelay: 10s, maxDelay: 1h, maxPermanentFailures: 4}
`,
      { env: {} },
    );
    expect(c.lists[0]).toMatchObject({
      address: 'xen-devel@lists.xenproject.org',
      reply: 'list',
      mute: ['*@bots.example.org', 'syzbot@example.com'],
      embargoHours: 12,
      rateLimit: { perHour: 5 },
      maxAgeSeconds: null,
    });
    expect(c.maxAgeSeconds).toBe(36 * 3600);
    expect(c.delivery.email.leaseSeconds).toBe(120);
    expect(c.delivery.email.retry).toEqual({ initialDelaySeconds: 10, maxDelaySeconds: 3600, maxPermanentFailures: 4 });
  });

  test('errors name the key and say what to write', () => {
    expect(problems('lists:\n  - {address: a@b.org, replay: list}\n')).toEqual([
      'lists[0]: unknown key "replay": did you mean "reply"?',
    ]);
    expect(problems('lists:\n  - {address: a@b.org, reply: yes}\n')[0]).toMatch(/^lists\[0\]\.reply: "yes" is not allowed: use one of off, author, list/);
    expect(problems('lists:\n  - {rules: [xen]}\n')).toEqual([
      "lists[0].address: missing: the list's posting address, e.g. xen-devel@lists.xenproject.org",
    ]);
    expect(problems('sources:\n  - {type: public-inbox}\n')).toEqual([
      'sources[0].path: missing for a public-inbox source: write {type: public-inbox, path: /srv/inbox/xen-devel, every: 60s}',
    ]);
    expect(problems('sources:\n  - {type: nntp, url: x}\n')[0]).toMatch(/^sources\[0\]\.type: "nntp" is not allowed: use one of public-inbox, imap, maildir, lmtp/);
    expect(problems('sources:\n  - {type: maildir, path: /m, every: soon}\n')).toEqual([
      'sources[0].every: "soon" is not a duration: write e.g. 60s or 5m',
    ]);
    expect(problems('delivery:\n  email: {mode: smtp}\n')).toEqual([
      'delivery.email.smtp: missing for mode smtp: write smtp://127.0.0.1:25 (or smtps://user@host:465)',
    ]);
    expect(problems('delivery:\n  email: {mode: smtp, smtp: "http://x"}\n')[0]).toMatch(/^delivery\.email\.smtp: scheme "http" is not supported/);
    expect(problems('http: {listen: "localhost:99999"}\n')[0]).toMatch(/^http\.listen: "localhost:99999" is not host:port/);
    expect(problems('store: mysql://x\n')[0]).toMatch(/^store: "mysql:\/\/x" is not a store URL/);
    expect(problems('stroe: sqlite:x.db\n')).toEqual(['unknown key "stroe": did you mean "store"?']);
    // Replying by mail needs a real sender.
    expect(problems('lists:\n  - {address: a@b.org, reply: author}\n')[0]).toMatch(/^delivery\.email\.from: missing: lists\[0\] replies by mail/);
    // Several problems are reported at once.
    expect(problems('lists:\n  - {address: a@b.org, reply: x, mute: 3}\n').length).toBe(2);
    // YAML syntax errors give the line.
    expect(problems('lists: [\n')[0]).toMatch(/^YAML: .*\(line \d+\)/);
  });

  test('secrets come from the environment and never show in the redacted config', () => {
    const c = parseConfig(
      `store: postgres://patchvet:dbpass@db/patchvet
sources: [{type: imap, url: "imaps://me@mail.example.org/INBOX"}]
delivery: {email: {mode: smtp, smtp: "smtps://bot@mail.example.org:465", from: "bot@example.org"}}
`,
      { env: { PATCHVET_IMAP_PASSWORD: 'imap-secret', PATCHVET_SMTP_PASSWORD: 'smtp-secret' } },
    );
    expect(c.delivery.email.smtpPassword).toBe('smtp-secret');
    expect((c.sources[0] as { password?: string }).password).toBe('imap-secret');
    const shown = JSON.stringify(redactedConfig(c));
    expect(shown).not.toMatch(/imap-secret|smtp-secret|dbpass/);
    expect(shown).toContain('postgres://patchvet:[redacted]@db/patchvet');
    // A user without a password is an error that says which variable to set.
    expect(problems('delivery: {email: {mode: smtp, smtp: "smtp://bot@host:587"}}\n')).toEqual([
      'delivery.email.smtp: user "bot" needs a password: set PATCHVET_SMTP_PASSWORD',
    ]);
  });

  test('loadConfig names a missing file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'patchvet-config-'));
    try {
      expect(() => loadConfig(join(dir, 'nope.yml'), {})).toThrow(/nope\.yml: no such file/);
      writeFileSync(join(dir, 'p.yml'), 'http: off\n');
      expect(loadConfig(join(dir, 'p.yml'), {}).http).toBeNull();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('durations, listen addresses, bare addresses', () => {
    expect(parseDuration('60s')).toBe(60);
    expect(parseDuration('1.5h')).toBe(5400);
    expect(parseDuration('500ms')).toBe(0.5);
    expect(parseDuration('7d')).toBe(604800);
    expect(parseDuration(30)).toBe(30);
    expect(parseDuration('soon')).toBeNull();
    expect(parseDuration(-1)).toBeNull();
    expect(parseListen('127.0.0.1:3000')).toEqual({ host: '127.0.0.1', port: 3000 });
    expect(parseListen(':8080')).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(parseListen('3000')).toEqual({ host: '127.0.0.1', port: 3000 });
    expect(parseListen('localhost:3000')).toEqual({ host: 'localhost', port: 3000 });
    expect(parseListen('[::1]:25')).toEqual({ host: '::1', port: 25 });
    expect(parseListen('0.0.0.0:0')).toEqual({ host: '0.0.0.0', port: 0 });
    expect(parseListen('host')).toBeNull();
    expect(bareAddress('patchvet <Bot@Example.org>')).toBe('bot@example.org');
    expect(bareAddress('bot@example.org')).toBe('bot@example.org');
    expect(bareAddress('patchvet')).toBeNull();
  });
});

describe('sources from the config', () => {
  test('public-inbox and maildir sources are built with the keys as written', async () => {
    const c = parseConfig(
      `sources:
  - {type: public-inbox, path: /srv/inbox/xen-devel, every: 60s, start: beginning}
  - {type: maildir, path: /srv/Maildir/xen-devel, every: 5m}
`,
      { env: {} },
    );
    const sources = await createSources(c.sources, pino({ level: 'silent' }));
    expect(sources.map((s) => s.key)).toEqual(['public-inbox:/srv/inbox/xen-devel', 'maildir:/srv/Maildir/xen-devel']);
  });

  test('what a source refuses is a config error naming the entry', async () => {
    const bad = parseConfig('sources:\n  - {type: public-inbox, path: /srv/a, start: yesterday}\n', { env: {} });
    await expect(createSources(bad.sources, pino({ level: 'silent' }))).rejects.toThrow(/sources\[0\] \(public-inbox\): .*start/);
    const twice = parseConfig('sources:\n  - {type: maildir, path: /srv/m}\n  - {type: maildir, path: /srv/m/}\n', { env: {} });
    await expect(createSources(twice.sources, pino({ level: 'silent' }))).rejects.toThrow('sources: maildir:/srv/m is listed twice');
    const imap = parseConfig('sources:\n  - {type: imap, url: "imaps://me@mail.example.org/INBOX"}\n', { env: {} });
    const saved = process.env.PATCHVET_IMAP_PASSWORD;
    delete process.env.PATCHVET_IMAP_PASSWORD;
    try {
      await expect(createSources(imap.sources, pino({ level: 'silent' }))).rejects.toThrow(/sources\[0\] \(imap\): .*PATCHVET_IMAP_PASSWORD/);
    } finally {
      if (saved !== undefined) process.env.PATCHVET_IMAP_PASSWORD = saved;
    }
  });
});
