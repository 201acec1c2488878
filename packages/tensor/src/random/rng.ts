import { ValueError } from '../errors.js'

/**
 * A seeded pseudo-random generator: PCG-XSH-RR 64/32 (M. O'Neill, "PCG: A Family of Simple Fast
 * Space-Efficient Statistically Good Algorithms for Random Number Generation", 2014), i.e. `pcg32` of the PCG
 * reference implementation. Its state is a 64-bit LCG (multiplier 6364136223846793005) advanced with 32-bit
 * integer math, so every JavaScript engine produces the same stream bit for bit; the output permutation
 * (xorshift-high then a random rotation) hides the LCG's weak low bits. `(seed, stream)` selects one of 2^63
 * independent streams, which is what `split()` uses.
 *
 * All derived samplers (`uniform`, `normal`, …) consume 32-bit outputs in a fixed order, so a seed fixes every
 * value a program draws regardless of backend: sampling always happens on the host in float64.
 */
export interface Rng {
  /** The next 32-bit output as an unsigned integer in [0, 2^32). */
  nextUint32(): number
  /** A float64 in [0, 1) with 53 random bits (two outputs). */
  next(): number
  /** A standard normal sample (Box–Muller; the second value of each pair is cached). */
  normal(): number
  /** An unbiased integer in [low, high) (integers, high − low ≤ 2^32); rejection sampling on 32-bit outputs. */
  int(low: number, high: number): number
  /** A new generator on a stream derived from this one's next outputs; this generator advances by 4 outputs. */
  split(): Rng
  /** An independent copy with the same state: both produce the same values from here on. */
  clone(): Rng
}

// 64-bit arithmetic on (hi, lo) pairs of uint32. Products of 16-bit limbs stay below 2^32, so they are exact
// in float64; Math.imul gives the low 32 bits of the cross terms that only reach the high word.
const MUL_HI = 0x5851f42d
const MUL_LO = 0x4c957f2d

function mulLo64(ahi: number, alo: number, bhi: number, blo: number, out: Uint32Array): void {
  const a0 = alo & 0xffff
  const a1 = alo >>> 16
  const b0 = blo & 0xffff
  const b1 = blo >>> 16
  const p00 = a0 * b0
  const p01 = a0 * b1
  const p10 = a1 * b0
  const p11 = a1 * b1
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff)
  const lo = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0
  const carry = p11 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)
  out[0] = (carry + Math.imul(ahi, blo) + Math.imul(alo, bhi)) >>> 0
  out[1] = lo
}

const TWO32 = 4294967296

class Pcg32 implements Rng {
  // [hi, lo] of the state and of the (odd) increment.
  readonly #s = new Uint32Array(2)
  readonly #inc = new Uint32Array(2)
  #spare: number | undefined = undefined

  static fromParts(state: Uint32Array, inc: Uint32Array, spare: number | undefined): Pcg32 {
    const g = new Pcg32()
    g.#s.set(state)
    g.#inc.set(inc)
    g.#spare = spare
    return g
  }

  /** The PCG reference seeding (`pcg32_srandom_r`): inc = 2·stream + 1, step, add the seed, step. */
  static seeded(seedHi: number, seedLo: number, streamHi: number, streamLo: number): Pcg32 {
    const g = new Pcg32()
    g.#inc[0] = ((streamHi << 1) | (streamLo >>> 31)) >>> 0
    g.#inc[1] = ((streamLo << 1) | 1) >>> 0
    g.#step()
    g.#add(seedHi, seedLo)
    g.#step()
    return g
  }

  #add(hi: number, lo: number): void {
    const l = this.#s[1]! + lo
    this.#s[1] = l >>> 0
    this.#s[0] = (this.#s[0]! + hi + (l >= TWO32 ? 1 : 0)) >>> 0
  }

  #step(): void {
    mulLo64(this.#s[0]!, this.#s[1]!, MUL_HI, MUL_LO, this.#s)
    this.#add(this.#inc[0]!, this.#inc[1]!)
  }

  nextUint32(): number {
    const hi = this.#s[0]!
    const lo = this.#s[1]!
    this.#step()
    // xorshifted = ((old >> 18) ^ old) >> 27, truncated to 32 bits; rot = old >> 59.
    const xhi = hi ^ (hi >>> 18)
    const xlo = lo ^ ((lo >>> 18) | (hi << 14))
    const xs = ((xlo >>> 27) | (xhi << 5)) >>> 0
    const rot = hi >>> 27
    return ((xs >>> rot) | (xs << (-rot & 31))) >>> 0
  }

  next(): number {
    const a = this.nextUint32() >>> 5
    const b = this.nextUint32() >>> 6
    return (a * 67108864 + b) / 9007199254740992
  }

  normal(): number {
    if (this.#spare !== undefined) {
      const s = this.#spare
      this.#spare = undefined
      return s
    }
    // 1 − u lies in (0, 1], so the log is finite.
    const r = Math.sqrt(-2 * Math.log(1 - this.next()))
    const theta = 2 * Math.PI * this.next()
    this.#spare = r * Math.sin(theta)
    return r * Math.cos(theta)
  }

  int(low: number, high: number): number {
    const range = high - low
    if (range === TWO32) return low + this.nextUint32()
    // Reject the top partial block so every residue is equally likely.
    const limit = TWO32 - (TWO32 % range)
    let x = this.nextUint32()
    while (x >= limit) x = this.nextUint32()
    return low + (x % range)
  }

  split(): Rng {
    const s = [this.nextUint32(), this.nextUint32(), this.nextUint32(), this.nextUint32()] as const
    return Pcg32.seeded(s[0], s[1], s[2], s[3])
  }

  clone(): Rng {
    return Pcg32.fromParts(this.#s, this.#inc, this.#spare)
  }
}

/** Split a safe integer into (hi, lo) uint32 words of its 64-bit two's complement. */
function words(op: string, arg: string, n: number): [number, number] {
  if (!Number.isSafeInteger(n)) throw new ValueError({ op, arg, expected: 'a safe integer', actual: n })
  return [Math.floor(n / TWO32) >>> 0, n >>> 0]
}

/**
 * A generator seeded with `seed` (any safe integer). `stream` picks one of the independent streams for the same
 * seed (default 0). `rng(42, 54)` reproduces the PCG reference demo (`0xa15c02b7, 0x7b47f409, …`).
 */
export function rng(seed: number, stream = 0): Rng {
  const [sh, sl] = words('rng', 'seed', seed)
  const [th, tl] = words('rng', 'stream', stream)
  return Pcg32.seeded(sh, sl, th, tl)
}
