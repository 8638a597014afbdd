// Run the CLI in-process with captured stdout/stderr.
import { PassThrough, type Readable } from 'node:stream';
import { main } from '../../src/cli.js';

export async function run(args: string[], stdin?: Readable): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const code = await main(['node', 'patchvet', ...args], { stdout, stderr, stdin });
  return { code, out, err };
}
