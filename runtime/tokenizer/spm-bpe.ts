/**
 * Builds a Hugging Face tokenizer.json for a SentencePiece-style BPE vocabulary (Llama 2,
 * Mistral, llama2.c, GGUF "llama" vocabularies) from its pieces, scores and piece types.
 *
 * SentencePiece BPE encodes by repeatedly merging the adjacent pair whose concatenation
 * is the highest-scoring piece (llama2.c run.c encode() does the same). HF BPE merges by
 * rank instead, so every way a piece splits into two pieces becomes a merge ranked by
 * the score of the merged piece: the merge order is then the same. This is the approach
 * of HF's SentencePiece converter (transformers convert_slow_tokenizer.py).
 */

export const SPACE_MARKER = "\u2581";

/** SentencePiece piece types (sentencepiece_model.proto ModelProto.SentencePiece.Type). */
export const PieceType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

export interface Piece {
  piece: string;
  score: number;
  type: number;
}

export interface SpmBpeOptions {
  pieces: readonly Piece[];
  unkId?: number;
  bosId?: number;
  eosId?: number;
  padId?: number;
  /** Prepend "▁" to the text (SentencePiece add_dummy_prefix). */
  addDummyPrefix: boolean;
  /** Collapse runs of spaces and trim (SentencePiece remove_extra_whitespaces). */
  removeExtraWhitespaces?: boolean;
  byteFallback: boolean;
  addBosToken: boolean;
  addEosToken?: boolean;
  chatTemplate?: string;
}

/**
 * Only normal pieces take part in merges. Control, byte and unknown pieces never come out
 * of a merge in SentencePiece; user-defined pieces are matched whole before BPE (they
 * become added tokens); unused pieces are never produced by encoding.
 */
function isMergeable(type: number): boolean {
  return type === PieceType.NORMAL;
}

/**
 * Derives merges: for each mergeable piece, every split into two mergeable pieces, ordered
 * by the merged piece's score (highest first), then by piece id, then by the left part's id.
 * Cost is the total length of all pieces, not the square of the vocabulary size.
 */
export function mergesByScore(pieces: readonly Piece[]): [string, string][] {
  const ids = new Map<string, number>();
  pieces.forEach((p, id) => {
    if (isMergeable(p.type) && !ids.has(p.piece)) ids.set(p.piece, id);
  });
  const found: { left: string; right: string; score: number; id: number; leftId: number }[] = [];
  pieces.forEach((p, id) => {
    if (!isMergeable(p.type) || ids.get(p.piece) !== id) return;
    const chars = Array.from(p.piece);
    let left = "";
    for (let k = 1; k < chars.length; k++) {
      left += chars[k - 1];
      const leftId = ids.get(left);
      if (leftId === undefined) continue;
      const right = p.piece.slice(left.length);
      if (ids.has(right)) found.push({ left, right, score: p.score, id, leftId });
    }
  });
  found.sort((a, b) => b.score - a.score || a.id - b.id || a.leftId - b.leftId);
  return found.map((m) => [m.left, m.right]);
}

/**
 * SentencePiece remove_extra_whitespaces: trim spaces at both ends and collapse runs.
 * Spaces only (tabs and newlines stay), so this is not a Strip normalizer.
 */
export function removeExtraWhitespaces(): Record<string, unknown>[] {
  return [
    { type: "Replace", pattern: { Regex: "\\A +| +\\z" }, content: "" },
    { type: "Replace", pattern: { Regex: " {2,}" }, content: " " },
  ];
}

function addedToken(id: number, content: string, special: boolean) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special };
}

/** Produces tokenizer.json and tokenizer_config.json for a SentencePiece BPE vocabulary. */
export function spmBpeToFiles(options: SpmBpeOptions): {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
} {
  const { pieces } = options;
  const vocab: Record<string, number> = {};
  const added: ReturnType<typeof addedToken>[] = [];
  pieces.forEach((p, id) => {
    if (!(p.piece in vocab)) vocab[p.piece] = id;
    const isSpecialId = id === options.unkId || id === options.bosId || id === options.eosId || id === options.padId;
    if (p.type === PieceType.CONTROL || p.type === PieceType.UNKNOWN || isSpecialId) {
      added.push(addedToken(id, p.piece, true));
    } else if (p.type === PieceType.USER_DEFINED) {
      added.push(addedToken(id, p.piece, false));
    }
  });
  const pieceAt = (id: number | undefined) => (id === undefined || id < 0 ? undefined : pieces[id]?.piece);
  const unk = pieceAt(options.unkId);
  const bos = pieceAt(options.bosId);
  const eos = pieceAt(options.eosId);

  const normalizers = options.removeExtraWhitespaces ? removeExtraWhitespaces() : [];
  if (options.addDummyPrefix) normalizers.push({ type: "Prepend", prepend: SPACE_MARKER });
  normalizers.push({ type: "Replace", pattern: { String: " " }, content: SPACE_MARKER });

  const single: Record<string, unknown>[] = [];
  const special: Record<string, unknown> = {};
  if (options.addBosToken && bos !== undefined) {
    single.push({ SpecialToken: { id: bos, type_id: 0 } });
    special[bos] = { id: bos, ids: [options.bosId], tokens: [bos] };
  }
  single.push({ Sequence: { id: "A", type_id: 0 } });
  if (options.addEosToken && eos !== undefined) {
    single.push({ SpecialToken: { id: eos, type_id: 0 } });
    special[eos] = { id: eos, ids: [options.eosId], tokens: [eos] };
  }

  const decoders: Record<string, unknown>[] = [{ type: "Replace", pattern: { String: SPACE_MARKER }, content: " " }];
  if (options.byteFallback) decoders.push({ type: "ByteFallback" });
  decoders.push({ type: "Fuse" });
  if (options.addDummyPrefix) decoders.push({ type: "Strip", content: " ", start: 1, stop: 0 });

  const tokenizerJson: Record<string, unknown> = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: "Sequence", normalizers },
    pre_tokenizer: null,
    post_processor: { type: "TemplateProcessing", single, pair: [...single, { Sequence: { id: "B", type_id: 1 } }], special_tokens: special },
    decoder: { type: "Sequence", decoders },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: unk ?? null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: options.byteFallback,
      ignore_merges: false,
      vocab,
      merges: mergesByScore(pieces),
    },
  };
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: options.addBosToken,
    add_eos_token: options.addEosToken ?? false,
    clean_up_tokenization_spaces: false,
    legacy: true,
  };
  if (bos !== undefined) tokenizerConfig.bos_token = bos;
  if (eos !== undefined) tokenizerConfig.eos_token = eos;
  if (unk !== undefined) tokenizerConfig.unk_token = unk;
  const pad = pieceAt(options.padId);
  if (pad !== undefined) tokenizerConfig.pad_token = pad;
  if (options.chatTemplate !== undefined) tokenizerConfig.chat_template = options.chatTemplate;
  return { tokenizerJson, tokenizerConfig };
}
