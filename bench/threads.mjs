// npm run bench: `patchvet threads` on the real linux-hyperv sample and on a large generated
// mbox (default 1 GB; BENCH_MB=... to change, BENCH_RUNS=n to repeat each input, BENCH_BIN and
// BENCH_ONLY, BENCH_WORKERS below). Prints
// messages/s (wall clock), CPU per message (user+sys of the whole process: main thread, parser
// workers, V8's GC and compiler threads) and peak RSS (VmHWM of the process, which covers its
// worker threads). Figures only, no assertions: on a shared machine wall-clock throughput
// depends on what else runs, CPU per message and peak RSS much less.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'bench', 'out');
mkdirSync(out, { recursive: true });
const sample = join(root, '..', 'shared', 'fixtures', 'real', 'linux-hyperv-2026.mbox.gz');
const bigMb = Number(process.env.BENCH_MB ?? 1024);
const runs = Math.max(1, Number(process.env.BENCH_RUNS ?? 1));
const big = join(out, `generated-${bigMb}mb.mbox`);
/** The patchvet to run (BENCH_BIN=... to compare another build); BENCH_ONLY=real|big runs one input. */
const bin = process.env.BENCH_BIN ?? join(root, 'bin', 'patchvet');
const only = process.env.BENCH_ONLY;
/** BENCH_WORKERS=1,2 runs each input once per worker count (default: patchvet's own, one per core). */
const workerCounts = process.env.BENCH_WORKERS ? process.env.BENCH_WORKERS.split(',').map((w) => w.trim()) : [null];
/** Linux clock ticks per second (USER_HZ), the unit of utime/stime in /proc. */
const TICKS = 100;

/** utime + stime (ticks) of a process, all its threads; null once it is gone. */
function cpuTicks(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

function peakKb(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Run a command; wall seconds, CPU seconds and peak RSS (sampled from /proc every 20 ms). */
function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', opts.stdout ?? 'inherit', 'inherit'] });
    let peak = 0;
    let ticks = 0;
    const poll = () => {
      const k = peakKb(p.pid);
      if (k !== null) peak = Math.max(peak, k);
      const t = cpuTicks(p.pid);
      if (t !== null) ticks = Math.max(ticks, t);
    };
    const timer = setInterval(poll, 20);
    const t0 = process.hrtime.bigint();
    p.on('error', reject);
    p.on('exit', (code) => {
      clearInterval(timer);
      resolve({ code, seconds: Number(process.hrtime.bigint() - t0) / 1e9, cpu: ticks / TICKS, peakMb: peak / 1024 });
    });
  });
}

function tailStats(file) {
  const size = statSync(file).size;
  const fd = openSync(file, 'r');
  const len = Math.min(size, 1 << 20);
  const buf = Buffer.alloc(len);
  readSync(fd, buf, 0, len, size - len);
  closeSync(fd);
  const m = /"stats":(\{[^}]*\})\}\s*$/.exec(buf.toString('utf8'));
  return m ? JSON.parse(m[1]) : null;
}

async function measure(label, input) {
  const outFile = join(out, 'threads.json');
  for (let i = 0; i < runs * workerCounts.length; i++) {
    const workers = workerCounts[i % workerCounts.length];
    const fd = openSync(outFile, 'w');
    // bin/patchvet itself, so its shebang's V8 flags (heap limits) apply as they do for users.
    const r = await run(bin, ['threads', input, '--format', 'json', ...(workers ? ['--workers', workers] : [])], { stdout: fd });
    closeSync(fd);
    const n = tailStats(outFile)?.messages ?? 0;
    const mb = statSync(input).size / (1024 * 1024);
    console.log(
      `${label}${workers ? ` [${workers} worker${workers === '1' ? '' : 's'}]` : ''}: ${n} messages (${mb.toFixed(0)} MB on disk) in ${r.seconds.toFixed(1)} s = ${Math.round(n / r.seconds)} messages/s; ` +
        `CPU ${r.cpu.toFixed(1)} s = ${((r.cpu * 1000) / Math.max(1, n)).toFixed(2)} ms/message; ` +
        `peak RSS ${r.peakMb.toFixed(0)} MB; exit ${r.code}`,
    );
  }
}

if (only !== 'big') await measure('real sample (linux-hyperv, gz)', sample);
if (only === 'real') process.exit(0);
if (!existsSync(big) || statSync(big).size < bigMb * 1024 * 1024 * 0.95) {
  console.log(`generating ${bigMb} MB mbox at ${big} ...`);
  const g = await run(process.execPath, [join(root, 'bench', 'gen-mbox.mjs'), big, String(bigMb)]);
  if (g.code !== 0) throw new Error('gen-mbox failed');
}
await measure(`generated mbox (${bigMb} MB)`, big);
