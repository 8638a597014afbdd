// Growable columns of numbers for the in-memory Threader (buildThreads: serve, the GitHub
// bridge, tests; a local run's index is on disk, see store/corpus-index.ts), kept in
// fixed-size typed-array chunks. A column that
// grew by copying into a larger array would, at every growth, need the old and the new array
// at once, and keep the old one allocated until the main thread's next full GC (which an
// index that only grows seldom triggers): about twice the index in memory for nothing.
// One class per element type, so every access site sees a single array type.

const SHIFT = 14;
/** Entries per chunk (16384: 64 KB for 32-bit columns). */
export const CHUNK = 1 << SHIFT;
const MASK = CHUNK - 1;

export class Int32Column {
  private chunks: Int32Array[] = [];
  constructor(private readonly initial = 0) {}
  /** Make room for indexes below n (new entries hold the initial value). */
  ensure(n: number): void {
    while (this.chunks.length * CHUNK < n) this.chunks.push(new Int32Array(CHUNK).fill(this.initial));
  }
  get(i: number): number {
    return this.chunks[i >>> SHIFT][i & MASK];
  }
  set(i: number, v: number): void {
    this.chunks[i >>> SHIFT][i & MASK] = v;
  }
}

export class Uint32Column {
  private chunks: Uint32Array[] = [];
  ensure(n: number): void {
    while (this.chunks.length * CHUNK < n) this.chunks.push(new Uint32Array(CHUNK));
  }
  get(i: number): number {
    return this.chunks[i >>> SHIFT][i & MASK];
  }
  set(i: number, v: number): void {
    this.chunks[i >>> SHIFT][i & MASK] = v;
  }
}

export class Uint16Column {
  private chunks: Uint16Array[] = [];
  ensure(n: number): void {
    while (this.chunks.length * CHUNK < n) this.chunks.push(new Uint16Array(CHUNK));
  }
  get(i: number): number {
    return this.chunks[i >>> SHIFT][i & MASK];
  }
  set(i: number, v: number): void {
    this.chunks[i >>> SHIFT][i & MASK] = v;
  }
}

export class Uint8Column {
  private chunks: Uint8Array[] = [];
  ensure(n: number): void {
    while (this.chunks.length * CHUNK < n) this.chunks.push(new Uint8Array(CHUNK));
  }
  get(i: number): number {
    return this.chunks[i >>> SHIFT][i & MASK];
  }
  set(i: number, v: number): void {
    this.chunks[i >>> SHIFT][i & MASK] = v;
  }
}

export class Float64Column {
  private chunks: Float64Array[] = [];
  constructor(private readonly initial = 0) {}
  ensure(n: number): void {
    while (this.chunks.length * CHUNK < n) this.chunks.push(new Float64Array(CHUNK).fill(this.initial));
  }
  get(i: number): number {
    return this.chunks[i >>> SHIFT][i & MASK];
  }
  set(i: number, v: number): void {
    this.chunks[i >>> SHIFT][i & MASK] = v;
  }
}

/**
 * Strings of one-byte characters (Latin-1) stored as bytes in chunks of 1 MB: a string never
 * spans two chunks (a longer one gets a chunk of its own). Positions are chunk * 2^20 + offset.
 */
export class ByteArena {
  private static readonly SIZE = 1 << 20;
  private chunks: Buffer[] = [];
  private used = ByteArena.SIZE;

  /** Store s (every char code <= 0xff) and return its position. */
  add(s: string): number {
    if (this.used + s.length > ByteArena.SIZE || this.chunks.length === 0) {
      this.chunks.push(Buffer.allocUnsafe(Math.max(ByteArena.SIZE, s.length)));
      this.used = 0;
      if (s.length > ByteArena.SIZE) {
        // A chunk of its own; the next string starts a new one.
        this.chunks[this.chunks.length - 1].write(s, 0, 'latin1');
        this.used = ByteArena.SIZE;
        return (this.chunks.length - 1) * ByteArena.SIZE;
      }
    }
    const at = (this.chunks.length - 1) * ByteArena.SIZE + this.used;
    this.used += this.chunks[this.chunks.length - 1].write(s, this.used, 'latin1');
    return at;
  }

  /** The bytes at `at` (the chunk, and the offset in it). */
  chunk(at: number): Buffer {
    return this.chunks[Math.floor(at / ByteArena.SIZE)];
  }

  static offset(at: number): number {
    return at % ByteArena.SIZE;
  }

  text(at: number, length: number): string {
    const o = ByteArena.offset(at);
    return this.chunk(at).toString('latin1', o, o + length);
  }
}
