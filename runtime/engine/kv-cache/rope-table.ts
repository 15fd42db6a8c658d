/**
 * Cosines and sines of RoPE angles pos·invFreq[i] for every position of the context, so
 * compressed caches can undo and redo the rotation of cached keys without trigonometry per
 * step (KIVI quantises keys before RoPE). Same rotate-half pairing (i, i + headDim/2) and
 * angles as ops.rope.
 */
export interface RopeTable {
  /** Rotates rows (n, nHeads*headDim) at positions first.. by +angle (direction 1) or -angle (-1), in place. */
  rotate(rows: Float32Array, n: number, first: number, direction: 1 | -1): void;
}

export function createRopeTable(invFreq: Float32Array, nHeads: number, headDim: number, positions: number): RopeTable {
  const half = headDim / 2;
  const cos = new Float32Array(positions * half);
  const sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p * invFreq[i];
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return {
    rotate(rows, n, first, direction) {
      for (let t = 0; t < n; t++) {
        const at = (first + t) * half;
        for (let h = 0; h < nHeads; h++) {
          const base = (t * nHeads + h) * headDim;
          for (let i = 0; i < half; i++) {
            const c = cos[at + i];
            const s = direction * sin[at + i];
            const a = rows[base + i];
            const b = rows[base + i + half];
            rows[base + i] = a * c - b * s;
            rows[base + i + half] = b * c + a * s;
          }
        }
      }
    },
  };
}
