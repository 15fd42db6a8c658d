/**
 * Reusable memory for one layer's temporaries (normalised inputs, projections, activations).
 * Between `begin()` calls every Float32Array handed out comes from one growing buffer that
 * the next layer overwrites, so a forward pass leaves almost no garbage behind: without it,
 * a 1.1B decode step dropped ~4 MB of dead arrays and a 64-token prefill block ~150 MB,
 * which the engines' collectors reclaimed late (peak RSS far above the model's size).
 * Outside a begin/end bracket it allocates fresh arrays, as callers may keep those.
 */
export class LayerScratch {
  private buffer = new ArrayBuffer(1 << 20);
  private used = 0;
  private active = false;

  /** Starts a layer: everything handed out since the previous begin() may be overwritten. */
  begin(): void {
    this.active = true;
    this.used = 0;
  }

  /** Leaves scratch mode: later arrays are fresh (results the caller keeps, like logits). */
  end(): void {
    this.active = false;
    this.used = 0;
  }

  /** A Float32Array of `floats` values (contents unspecified inside a layer, zero outside). */
  f32(floats: number): Float32Array {
    if (!this.active) return new Float32Array(floats);
    const bytes = Math.ceil((floats * 4) / 64) * 64;
    if (this.used + bytes > this.buffer.byteLength) {
      // Views already handed out keep the old buffer alive until the layer ends.
      this.buffer = new ArrayBuffer(Math.max(2 * this.buffer.byteLength, bytes));
      this.used = 0;
    }
    const view = new Float32Array(this.buffer, this.used, floats);
    this.used += bytes;
    return view;
  }
}
