/** Tokenizers and chat templates: the runtime wrapper and the converters from other formats. */

export {
  createTokenizer,
  tokenContent,
  type CrumbTokenizer,
  type DecodeOptions,
  type EncodeOptions,
} from "./tokenizer.ts";
export { createDetokenizer, type Detokenizer } from "./detokenizer.ts";
export { llama2cTokenizerToFiles, readLlama2cTokenizer } from "./from-llama2c.ts";
export { readSentencePieceModel, sentencePieceModelToFiles, type SentencePieceModel } from "./from-sentencepiece.ts";
export { tokenizerFromGguf } from "./from-gguf.ts";
export { tiktokenToFiles } from "./from-tiktoken.ts";
export {
  renderChat,
  selectChatTemplate,
  strftime,
  type ChatMessage,
  type RenderChatOptions,
} from "./chat-template.ts";
