// The `serve` and `stats` commands through the CLI: config problems are usage errors (exit 2)
// that name the file and key; `serve --once` reads a real maildir, reviews, writes the outbox and
// exits 0; `stats` reports per-rule numbers as text and JSON.
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../helpers/cli.js';
import { mboxMessages, XEN_THREAD } from '../helpers/serve.js';

let dir: string;
const level = process.env.PATCHVET_LOG_LEVEL;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'patchvet-serve-cli-'));
  // serve logs at info unless told otherwise; keep the test output for failures.
  process.env.PATCHVET_LOG_LEVEL = 'warn';
});
afterAll(() => {
  if (level === undefined) delete process.env.PATCHVET_LOG_LEVEL;
  else process.env.PATCHVET_LOG_LEVEL = level;
  rmSync(dir, { recursive: true, force: true });
});

test('a missing or wrong config is a usage error naming the file and the key', async () => {
  const missing = await run(['serve', '--config', join(dir, 'nope.yml')]);
  expect(missing.code).toBe(2);
  expect(missing.err).toContain(`${join(dir, 'nope.yml')}: no such file`);

  const bad = join(dir, 'bad.yml');
  writeFileSync(bad, 'lists:\n  - {address: xen-devel@lists.xenproject.org, reply: sometimes}\n');
  const r = await run(['serve', '--config', bad]);
  expect(r.code).toBe(2);
  expect(r.err).toMatch(/bad\.yml: lists\[0\]\.reply: "sometimes" is not allowed: use one of off, author, list/);

  const unknownPack = join(dir, 'pack.yml');
  writeFileSync(unknownPack, `store: sqlite:${join(dir, 'p.db')}\nlists:\n  - {address: a@b.org, rules: [xne]}\nhttp: off\n`);
  const p = await run(['serve', '--config', unknownPack, '--once']);
  expect(p.code).toBe(2);
  expect(p.err).toMatch(/lists\[0\]\.rules: no rule pack named xne: loaded packs are .*xen/);

  const noStore = await run(['stats', '--config', unknownPack]);
  expect(noStore.code).toBe(2);
  expect(noStore.err).toMatch(/no store at sqlite:.*p\.db: run `patchvet serve` first/);
});

test('serve --once over a maildir, then stats as text and JSON', async () => {
  const md = join(dir, 'maildir');
  for (const d of ['new', 'cur', 'tmp']) mkdirSync(join(md, d), { recursive: true });
  mboxMessages(XEN_THREAD).forEach((m, i) => writeFileSync(join(md, 'new', `${i}.mail`), m.raw));
  const cfg = join(dir, 'patchvet.yml');
  writeFileSync(
    cfg,
    `store: sqlite:${join(dir, 'serve.db')}
sources:
  - {type: maildir, path: ${md}, start: beginning}
lists:
  - {address: xen-devel@lists.xenproject.org, rules: [xen, common]}
maxAge: off
delivery:
  email: {outbox: ${join(dir, 'outbox')}}
http: off
`,
  );
  const s = await run(['serve', '--config', cfg, '--once']);
  expect(s.code).toBe(0);
  expect(readdirSync(join(dir, 'outbox'))).toHaveLength(1);

  const text = await run(['stats', '--config', cfg]);
  expect(text.code).toBe(0);
  expect(text.out).toMatch(/^rule\s+findings\s+posted\s+disputes\s+precision$/m);
  expect(text.out).toMatch(/^xen\/idle-vcpu-path\s+1\s+0\s+0\s+-$/m);
  expect(text.out).toMatch(/^total\s+3\s+0\s+0\s+-$/m);

  const json = await run(['stats', '--config', cfg, '--format', 'json']);
  expect(json.code).toBe(0);
  const report = JSON.parse(json.out);
  expect(report.schema).toBe('patchvet/stats@1');
  expect(report.rules.map((r: { rule: string }) => r.rule)).toEqual(['xen/alloc-time-init', 'xen/fpu-init-order', 'xen/idle-vcpu-path']);
  expect(report.outbox).toMatchObject({ sent: 1, queued: 0, failed: 0 });

  // Run again: nothing new, nothing written twice.
  const again = await run(['serve', '--config', cfg, '--once']);
  expect(again.code).toBe(0);
  expect(readdirSync(join(dir, 'outbox'))).toHaveLength(1);
});
