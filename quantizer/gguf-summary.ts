/**
 * What happened to a GGUF's quantised tensors, for the quality report: which kept their blocks
 * (gguf-transcode.ts; bit-exact or with rounded scales) and which were re-quantised from
 * their dequantised weights, with which crumb encoding and method. Together with the report's
 * KL against the GGUF's own dequantised model it makes a re-quantisation an informed choice.
 */

/** One quantised GGUF tensor as the quantizer handled it. */
export interface GgufTensorRecord {
  readonly name: string;
  /** ggml type in the GGUF (Q4_K, Q6_K, ...). */
  readonly from: string;
  /** crumb encoding name (q4g32zp, q8g32, t1g256, ...). */
  readonly to: string;
  /** "transcode" when the blocks were kept, else the method that re-quantised them (rtn, q8, ...). */
  readonly method: string;
  readonly exactGroups?: number;
  readonly groups?: number;
  readonly maxAbsError?: number;
}

export interface GgufSummary {
  readonly kept: number;
  /** Kept tensors whose every weight equals ggml's dequantised weight bit for bit. */
  readonly kept_exact: number;
  readonly requantized: number;
  /** "Q4_K -> q4g32zp kept" / "Q6_K -> q8g32 q8": tensor counts (and bit-exact counts for kept ones). */
  readonly by_type: Readonly<Record<string, { tensors: number; exact?: number }>>;
  readonly tensors: readonly {
    name: string;
    from: string;
    to: string;
    method: string;
    exact_groups?: number;
    groups?: number;
    max_abs_error?: number;
  }[];
}

export function summarizeGguf(records: readonly GgufTensorRecord[]): GgufSummary {
  const byType: Record<string, { tensors: number; exact?: number }> = {};
  let kept = 0;
  let keptExact = 0;
  for (const r of records) {
    const isKept = r.method === "transcode";
    const exact = isKept && r.exactGroups === r.groups;
    const key = isKept ? `${r.from} -> ${r.to} kept` : `${r.from} -> ${r.to} ${r.method}`;
    const entry = (byType[key] ??= isKept ? { tensors: 0, exact: 0 } : { tensors: 0 });
    entry.tensors++;
    if (exact) entry.exact = (entry.exact ?? 0) + 1;
    if (isKept) kept++;
    if (exact) keptExact++;
  }
  return {
    kept,
    kept_exact: keptExact,
    requantized: records.length - kept,
    by_type: byType,
    tensors: records.map((r) => ({
      name: r.name,
      from: r.from,
      to: r.to,
      method: r.method,
      ...(r.groups === undefined ? {} : { exact_groups: r.exactGroups, groups: r.groups, max_abs_error: r.maxAbsError }),
    })),
  };
}

/** Report lines: kept and re-quantised tensors by (type -> encoding). */
export function formatGgufSummary(s: GgufSummary): string[] {
  const entries = Object.entries(s.by_type);
  const kept = entries.filter(([k]) => k.endsWith(" kept")).map(([k, v]) => `${k.slice(0, -5)} ${v.tensors} (${v.exact} bit-exact)`);
  const redone = entries.filter(([k]) => !k.endsWith(" kept")).map(([k, v]) => `${k} ${v.tensors}`);
  return [
    `GGUF blocks    kept in ${s.kept} tensors (${s.kept_exact} bit-exact)${kept.length > 0 ? `: ${kept.join(", ")}` : ""}`,
    `               re-quantised ${s.requantized} tensors${redone.length > 0 ? `: ${redone.join(", ")}` : ""}`,
    "               (KL, top-1 and perplexity are measured against the GGUF's own dequantised weights)",
  ];
}
