// npm run bench:stages: what one message costs at each step of the mail stage, on one thread,
// with no workers, threading or output: mailparser alone (as patchvet calls it, on the
// trimmed header block, and on the whole mail for comparison), then parseMail (+ in-body
// headers, CRLF recovery, ...), then the whole record (diff, functions, reply split,
// trailers) and its spool encoding. Each step runs twice over the input (the first pass of
// the first step warms the JIT up for the code later steps share). CPU is the whole process
// (V8's GC and compiler threads included).
//
//   node bench/stages.mjs [input]     (default: the real linux-hyperv sample)
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { simpleParser } from 'mailparser';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { readInputs } = await import(join(root, 'dist/sources/index.js'));
const { parseMail, trimHeaders, findHeaderEnd, PARSER_OPTIONS } = await import(join(root, 'dist/mail/parse.js'));
const { recordFromRaw } = await import(join(root, 'dist/mail/record.js'));
const { encodeRecord } = await import(join(root, 'dist/mail/stored.js'));

const input = process.argv[2] ?? join(root, '..', 'shared', 'fixtures', 'real', 'linux-hyperv-2026.mbox.gz');
const msgs = [];
for await (const m of readInputs([input])) msgs.push(m);
const bytes = msgs.reduce((a, m) => a + m.raw.length, 0);
console.log(`${msgs.length} messages, ${(bytes / 1048576).toFixed(0)} MB, from ${input}`);

async function step(label, fn) {
  for (const pass of ['pass 1', 'pass 2']) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (const m of msgs) await fn(m);
    const wall = performance.now() - t0;
    const c = process.cpuUsage(c0);
    const cpu = (c.user + c.system) / 1000;
    console.log(
      `${label.padEnd(34)} ${pass}: ${(wall / msgs.length).toFixed(3)} ms/message on its thread, ` +
        `${(cpu / msgs.length).toFixed(3)} ms CPU in all = ${Math.round((msgs.length / wall) * 1000)} messages/s`,
    );
  }
}

await step('mailparser, whole mail', (m) => simpleParser(m.raw, PARSER_OPTIONS));
await step('mailparser, trimmed headers', (m) => {
  const e = findHeaderEnd(m.raw);
  return simpleParser(e > 0 ? trimHeaders(m.raw, e) : m.raw, PARSER_OPTIONS);
});
await step('parseMail', (m) => parseMail(m));
await step('record (diff, replies, trailers)', (m) => recordFromRaw(m));
await step('record + spool encoding', async (m) => encodeRecord(await recordFromRaw(m)));

// Where the CPU went: this thread (the steps above) and V8's helper threads (GC, compiler).
let main = 0;
let helpers = 0;
for (const tid of readdirSync('/proc/self/task')) {
  try {
    const s = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    const t = (Number(f[11]) + Number(f[12])) / 100;
    if (Number(tid) === process.pid) main += t;
    else helpers += t;
  } catch {
    /* thread gone */
  }
}
console.log(`CPU: this thread ${main.toFixed(1)} s, V8 helper threads ${helpers.toFixed(1)} s`);
