// Progress on stderr for long runs, only when stderr is a terminal.
import cliProgress from 'cli-progress';
import type { Writable } from 'node:stream';

export interface Progress {
  tick: (messages: number) => void;
  stop: () => void;
}

export function progressReporter(stderr: Writable): Progress {
  const tty = (stderr as NodeJS.WriteStream).isTTY === true && !process.env.CI;
  if (!tty) return { tick: () => {}, stop: () => {} };
  const bar = new cliProgress.SingleBar(
    { stream: stderr as NodeJS.WriteStream, format: 'reading mail | {value} messages | {rate} msg/s', hideCursor: true, noTTYOutput: false },
    cliProgress.Presets.shades_classic,
  );
  const start = Date.now();
  let started = false;
  let last = 0;
  return {
    tick(n) {
      if (!started) {
        bar.start(0, 0, { rate: 0 });
        started = true;
      }
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      bar.update(n, { rate: Math.round((n * 1000) / Math.max(1, now - start)) });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
