// `patchvet review --llm` (and `stats`) through the CLI, against a local Chat Completions
// server: LLM findings in every output format next to the rule findings; without the
// variables nothing is sent and the run stops with what to set; with the server down or slow
// the rule findings still come out and the run says the LLM pass failed; the cache and the
// token counts survive the run in --llm-cache sqlite:PATH, which `stats` reads.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../helpers/cli.js';
import { FakeOpenAI, answer, deadUrl, GOOD_FINDING } from '../helpers/fake-openai.js';

const REF = join(process.cwd(), '../shared/fixtures/xen-fpu-reset-v2-1of9.mbox');
const PATCH_ID = '<20260324181937.2465574-2-ross.lagerwall@citrix.com>';
const LLM_VARS = Object.keys(process.env).filter((k) => k.startsWith('OPENAI_') || k.startsWith('PATCHVET_LLM_'));
const GOOD = GOOD_FINDING;

let server: FakeOpenAI;
let dir: string;
const saved = new Map<string, string | undefined>();

function env(vars: Record<string, string>): void {
  for (const k of [...LLM_VARS, ...Object.keys(vars)]) if (!saved.has(k)) saved.set(k, process.env[k]);
  for (const k of LLM_VARS) delete process.env[k];
  Object.assign(process.env, vars);
}

beforeEach(async () => {
  server = await FakeOpenAI.start();
  dir = mkdtempSync(join(tmpdir(), 'patchvet-llm-cli-'));
  env({});
});
afterEach(async () => {
  for (const [k, v] of saved) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  saved.clear();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('configuration', () => {
  test('--llm without the variables: exit 2, says what to set, sends nothing', async () => {
    const r = await run(['review', REF, '--llm', '--format', 'json']);
    expect(r.code).toBe(2);
    expect(r.out).toBe('');
    expect(r.err).toMatch(/--llm needs a model and an endpoint: set PATCHVET_LLM_MODEL and either OPENAI_API_KEY \(hosted API\) or OPENAI_BASE_URL/);
    env({ OPENAI_BASE_URL: server.url }); // an endpoint but no model: still off
    expect((await run(['review', REF, '--llm'])).code).toBe(2);
    expect(server.requests).toHaveLength(0);
  });

  test('a wrong value names its variable', async () => {
    env({ OPENAI_BASE_URL: server.url, PATCHVET_LLM_MODEL: 'm', PATCHVET_LLM_TIMEOUT: 'soon' });
    const r = await run(['review', REF, '--llm']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--llm: PATCHVET_LLM_TIMEOUT='soon': expected seconds/);
  });

  test('without --llm nothing is sent even when configured', async () => {
    env({ OPENAI_BASE_URL: server.url, PATCHVET_LLM_MODEL: 'm' });
    const r = await run(['review', REF, '--format', 'json']);
    expect(r.code).toBe(0);
    expect(server.requests).toHaveLength(0);
    expect(JSON.parse(r.out).findings.every((f: any) => f.source === 'rule')).toBe(true);
  });
});

describe('LLM findings in every output', () => {
  beforeEach(() => {
    server.fallback = answer({ findings: [GOOD] }, { prompt_tokens: 4000, completion_tokens: 100 });
    env({ OPENAI_BASE_URL: server.url, PATCHVET_LLM_MODEL: 'review-model' });
  });

  test('json: the rule findings, then the LLM one (source llm), tokens in stats', async () => {
    const r = await run(['review', REF, '--llm', '--format', 'json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc.findings.map((f: any) => `${f.source} ${f.rule} ${f.line}`)).toEqual([
      'rule xen/alloc-time-init 525',
      'rule xen/fpu-init-order 525',
      'rule xen/idle-vcpu-path 525',
      'llm llm/correctness 529',
    ]);
    expect(doc.findings[3]).toMatchObject({ messageId: PATCH_ID, function: 'arch_vcpu_create', code: '        arch_vcpu_regs_init(v);', series: { version: 2, index: 1, total: 9 } });
    expect(doc.stats).toMatchObject({ llmPatches: 1, llmFindings: 1, llmTokens: 4100, llmRequests: 1, llmFailed: 0 });
    expect(doc.notices).toBeUndefined();
    expect(server.chats).toHaveLength(1);
    expect(r.err).toMatch(/patchvet: LLM pass \(review-model at http:\/\/127\.0\.0\.1:\d+\/v1\): 1 patch, 1 finding, 4,100 tokens in 1 request/);
  });

  test('text, sarif and email carry it too', async () => {
    const text = await run(['review', REF, '--llm']);
    expect(text.out).toMatch(/^xen\/arch\/x86\/domain\.c:529: warning: \[llm\/correctness\] arch_vcpu_regs_init\(\) rewrites/m);
    expect(text.out).toMatch(/^ +529 \| \+ +arch_vcpu_regs_init\(v\);$/m);
    const sarif = JSON.parse((await run(['review', REF, '--llm', '--format', 'sarif'])).out);
    const res = sarif.runs[0].results.find((x: any) => x.ruleId === 'llm/correctness');
    expect(res.properties.source).toBe('llm');
    expect(res.locations[0].physicalLocation.region).toMatchObject({ startLine: 529 });
    expect(sarif.runs[0].tool.driver.rules.map((x: any) => x.id)).toContain('llm/correctness');
    const email = await run(['review', REF, '--llm', '--format', 'email']);
    expect(email.out).toMatch(/^> +arch_vcpu_regs_init\(v\);\n\narch_vcpu_regs_init\(\) rewrites the FPU control words that\n.*\n\(llm\/correctness, warning\)$/m);
    expect(email.out).not.toMatch(/Acked-by|Nacked-by|Reviewed-by: patchvet/);
  });

  test('LLM findings never decide the exit status (--fail-on counts rule findings only)', async () => {
    const r = await run(['review', REF, '--llm', '--no-default-rules', '--fail-on', 'info', '--format', 'json']);
    const doc = JSON.parse(r.out);
    expect(doc.findings.map((f: any) => f.source)).toEqual(['llm']);
    expect(r.code).toBe(0);
  });
});

describe('server down or slow: the rule findings stand and the run says so', () => {
  test('down (connection refused)', async () => {
    env({ OPENAI_BASE_URL: await deadUrl(), PATCHVET_LLM_MODEL: 'm', PATCHVET_LLM_RETRIES: '1' });
    const r = await run(['review', REF, '--llm', '--format', 'json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out);
    expect(doc.findings.map((f: any) => f.rule)).toEqual(['xen/alloc-time-init', 'xen/fpu-init-order', 'xen/idle-vcpu-path']);
    expect(doc.notices).toEqual([
      expect.stringMatching(/^LLM pass failed for \[PATCH v2 1\/9\] x86\/domain: Ensure a vCPU's FPU is reset early: cannot reach http:\/\/127\.0\.0\.1:\d+\/v1 \(ECONNREFUSED\)$/),
      expect.stringMatching(/^LLM pass failed: rule findings only/),
    ]);
    expect(doc.stats).toMatchObject({ llmFailed: 1, llmFindings: 0 });
    expect(r.err).toMatch(/^patchvet: LLM pass failed for \[PATCH v2 1\/9\].*ECONNREFUSED/m);
    const text = await run(['review', REF, '--llm']);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^xen\/arch\/x86\/domain\.c:525: warning: \[xen\/idle-vcpu-path\]/m);
    expect(text.out).toMatch(/^note: LLM pass failed for \[PATCH v2 1\/9\]/m);
  });

  test('slow (no answer within PATCHVET_LLM_TIMEOUT)', async () => {
    server.fallback = { hang: true };
    env({ OPENAI_BASE_URL: server.url, PATCHVET_LLM_MODEL: 'm', PATCHVET_LLM_TIMEOUT: '0.3' });
    const r = await run(['review', REF, '--llm']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^xen\/arch\/x86\/domain\.c:525: warning: \[xen\/idle-vcpu-path\]/m);
    expect(r.out).toMatch(/^note: LLM pass failed for \[PATCH v2 1\/9\] .*: no answer from http:\/\/127\.0\.0\.1:\d+\/v1 within 0\.3s$/m);
    expect(r.err).toMatch(/LLM pass failed/);
  });
});

describe('--llm-cache and stats', () => {
  test('a second run of the same patch costs nothing; stats shows the tokens per day and list', async () => {
    server.fallback = answer({ findings: [GOOD] }, { prompt_tokens: 4000, completion_tokens: 100 });
    env({ OPENAI_BASE_URL: server.url, PATCHVET_LLM_MODEL: 'review-model' });
    const db = join(dir, 'llm.db');
    const first = await run(['review', REF, '--llm', '--llm-cache', `sqlite:${db}`, '--format', 'json']);
    const second = await run(['review', REF, '--llm', '--llm-cache', `sqlite:${db}`, '--format', 'json']);
    expect(server.chats).toHaveLength(1);
    expect(JSON.parse(second.out).findings).toEqual(JSON.parse(first.out).findings);
    expect(JSON.parse(second.out).stats).toMatchObject({ llmCached: 1, llmTokens: 0, llmRequests: 0 });
    expect(second.err).toMatch(/1 patch, 1 finding, 0 tokens in 0 requests, 1 from the cache/);

    const cfg = join(dir, 'patchvet.yml');
    writeFileSync(cfg, `store: sqlite:${db}\nhttp: off\n`);
    const today = new Date().toISOString().slice(0, 10);
    const text = await run(['stats', '--config', cfg]);
    expect(text.code).toBe(0);
    expect(text.out).toMatch(new RegExp(`^  ${today}  xen-devel@lists\\.xenproject\\.org  4,100$`, 'm'));
    const json = JSON.parse((await run(['stats', '--config', cfg, '--format', 'json'])).out);
    expect(json.llm).toEqual({ days: 30, tokens: [{ day: today, list: 'xen-devel@lists.xenproject.org', tokens: 4100 }], total: 4100 });
  });

  test('an unusable --llm-cache is a usage error', async () => {
    env({ OPENAI_BASE_URL: server.url, PATCHVET_LLM_MODEL: 'm' });
    const r = await run(['review', REF, '--llm', '--llm-cache', 'redis://x']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--llm-cache 'redis:\/\/x': .*use memory, sqlite:PATH or postgres/);
  });
});
