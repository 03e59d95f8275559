/**
 * SipHash-2-4 (Aumasson and Bernstein): a keyed pseudo-random function with a 128-bit key and
 * a 64-bit output, designed for short inputs. The `hash` strategy needs a keyed, deterministic
 * function evaluated once per masked value; a call into OpenSSL costs over a microsecond per
 * value, this costs a fraction of that. 64-bit words are kept as pairs of 32-bit halves.
 */

/** A key prepared for hashing: four 32-bit words (k0 low, k0 high, k1 low, k1 high). */
export interface SipKey {
  readonly k: Uint32Array;
}

/** The first 16 bytes of `key` (zero-padded), little-endian, as SipHash reads its key. */
export function sipKey(key: Buffer): SipKey {
  const b = Buffer.alloc(16);
  key.copy(b, 0, 0, Math.min(16, key.length));
  // Longer keys fold in, so that every byte of a long secret matters.
  for (let i = 16; i < key.length; i++) b[i % 16] = b[i % 16]! ^ key[i]!;
  return { k: new Uint32Array([b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8), b.readUInt32LE(12)]) };
}

/** SipHash-2-4 of `data[start, end)`: the 64-bit result as [high, low] 32-bit halves. */
export function sipHash(key: SipKey, data: Uint8Array, start = 0, end = data.length): [number, number] {
  const k = key.k;
  const k0l = k[0]!, k0h = k[1]!, k1l = k[2]!, k1h = k[3]!;
  // The state as local (high, low) pairs, every word kept unsigned: the carry test of the
  // additions compares unsigned values.
  let v0h = (k0h ^ 0x736f6d65) >>> 0, v0l = (k0l ^ 0x70736575) >>> 0;
  let v1h = (k1h ^ 0x646f7261) >>> 0, v1l = (k1l ^ 0x6e646f6d) >>> 0;
  let v2h = (k0h ^ 0x6c796765) >>> 0, v2l = (k0l ^ 0x6e657261) >>> 0;
  let v3h = (k1h ^ 0x74656462) >>> 0, v3l = (k1l ^ 0x79746573) >>> 0;
  const len = end - start;
  const blocks = (len >>> 3) + 1; // the last one holds the remaining bytes and the length
  let mh = 0, ml = 0, h = 0, l = 0, lo = 0;
  for (let block = 0; block <= blocks; block++) {
    let rounds = 2;
    if (block < blocks - 1) {
      const i = start + block * 8;
      ml = (data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)) >>> 0;
      mh = (data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24)) >>> 0;
    } else if (block === blocks - 1) {
      const i = start + block * 8;
      ml = 0;
      mh = (len & 0xff) << 24;
      for (let j = 0; j < end - i; j++) {
        if (j < 4) ml |= data[i + j]! << (8 * j);
        else mh |= data[i + j]! << (8 * (j - 4));
      }
      ml >>>= 0;
      mh >>>= 0;
    } else {
      // Finalization: v2 ^= 0xff, four rounds.
      mh = 0;
      ml = 0;
      v2l = (v2l ^ 0xff) >>> 0;
      rounds = 4;
    }
    v3h = (v3h ^ mh) >>> 0;
    v3l = (v3l ^ ml) >>> 0;
    for (let r = 0; r < rounds; r++) {
      // v0 += v1; v1 = rotl(v1, 13) ^ v0; v0 = rotl(v0, 32)
      lo = (v0l + v1l) >>> 0;
      v0h = (v0h + v1h + (lo < v0l ? 1 : 0)) >>> 0;
      v0l = lo;
      h = v1h;
      l = v1l;
      v1h = (((h << 13) | (l >>> 19)) ^ v0h) >>> 0;
      v1l = (((l << 13) | (h >>> 19)) ^ v0l) >>> 0;
      h = v0h;
      v0h = v0l;
      v0l = h;
      // v2 += v3; v3 = rotl(v3, 16) ^ v2
      lo = (v2l + v3l) >>> 0;
      v2h = (v2h + v3h + (lo < v2l ? 1 : 0)) >>> 0;
      v2l = lo;
      h = v3h;
      l = v3l;
      v3h = (((h << 16) | (l >>> 16)) ^ v2h) >>> 0;
      v3l = (((l << 16) | (h >>> 16)) ^ v2l) >>> 0;
      // v0 += v3; v3 = rotl(v3, 21) ^ v0
      lo = (v0l + v3l) >>> 0;
      v0h = (v0h + v3h + (lo < v0l ? 1 : 0)) >>> 0;
      v0l = lo;
      h = v3h;
      l = v3l;
      v3h = (((h << 21) | (l >>> 11)) ^ v0h) >>> 0;
      v3l = (((l << 21) | (h >>> 11)) ^ v0l) >>> 0;
      // v2 += v1; v1 = rotl(v1, 17) ^ v2; v2 = rotl(v2, 32)
      lo = (v2l + v1l) >>> 0;
      v2h = (v2h + v1h + (lo < v2l ? 1 : 0)) >>> 0;
      v2l = lo;
      h = v1h;
      l = v1l;
      v1h = (((h << 17) | (l >>> 15)) ^ v2h) >>> 0;
      v1l = (((l << 17) | (h >>> 15)) ^ v2l) >>> 0;
      h = v2h;
      v2h = v2l;
      v2l = h;
    }
    v0h = (v0h ^ mh) >>> 0;
    v0l = (v0l ^ ml) >>> 0;
  }
  return [(v0h ^ v1h ^ v2h ^ v3h) >>> 0, (v0l ^ v1l ^ v2l ^ v3l) >>> 0];
}
