// npm run bench: messages/s and peak RSS of `patchvet threads` on the real sample and on a
// large generated mbox (default 1 GB; BENCH_MB=... to change). Figures only, no assertions.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, openSync, readSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'bench', 'out');
mkdirSync(out, { recursive: true });
const sample = join(root, '..', 'shared', 'fixtures', 'real', 'linux-hyperv-2026.mbox.gz');
const bigMb = Number(process.env.BENCH_MB ?? 1024);
const big = join(out, `generated-${bigMb}mb.mbox`);

function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', opts.stdout ?? 'inherit', 'inherit'] });
    let peak = 0;
    const poll = setInterval(() => {
      try {
        const s = readFileSync(`/proc/${p.pid}/status`, 'utf8');
        const m = /VmHWM:\s+(\d+) kB/.exec(s);
        if (m) peak = Math.max(peak, Number(m[1]));
      } catch {}
    }, 25);
    const t0 = process.hrtime.bigint();
    p.on('error', reject);
    p.on('exit', (code) => {
      clearInterval(poll);
      resolve({ code, seconds: Number(process.hrtime.bigint() - t0) / 1e9, peakMb: peak / 1024 });
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
  const fd = openSync(outFile, 'w');
  const r = await run(process.execPath, [join(root, 'bin', 'patchvet'), 'threads', input, '--format', 'json'], { stdout: fd });
  closeSync(fd);
  const stats = tailStats(outFile);
  const n = stats?.messages ?? 0;
  const mb = statSync(input).size / (1024 * 1024);
  console.log(
    `${label}: ${n} messages (${mb.toFixed(0)} MB on disk) in ${r.seconds.toFixed(1)} s = ` +
      `${Math.round(n / r.seconds)} messages/s, peak RSS ${r.peakMb.toFixed(0)} MB, exit ${r.code}`,
  );
}

await measure('real sample (linux-hyperv, gz)', sample);
if (!existsSync(big) || statSync(big).size < bigMb * 1024 * 1024 * 0.95) {
  console.log(`generating ${bigMb} MB mbox at ${big} ...`);
  const g = await run(process.execPath, [join(root, 'bench', 'gen-mbox.mjs'), big, String(bigMb)]);
  if (g.code !== 0) throw new Error('gen-mbox failed');
}
await measure(`generated mbox (${bigMb} MB)`, big);
