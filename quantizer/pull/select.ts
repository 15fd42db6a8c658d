/**
 * Which files of a Hub repository crumb needs: the config, generation defaults, tokenizer
 * files (tokenizer.model only when there is no tokenizer.json), the chat template and the
 * safetensors weights. With `model.safetensors.index.json`, exactly the shards its
 * `weight_map` names (a repository may also carry a consolidated copy that would double
 * the download); otherwise every top-level `*.safetensors`.
 */
import { UnsupportedModelError } from "../../runtime/errors.ts";
import { HubError } from "./errors.ts";
import type { RemoteFile } from "./hub-api.ts";
import { safeSegments } from "./names.ts";

export const INDEX_FILE = "model.safetensors.index.json";

const METADATA_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "chat_template.jinja",
];

/**
 * Refuses the whole listing if any name would escape the cache (a hub that sends one is
 * not trusted for the rest), then picks the files to fetch before the index is read.
 */
export function selectFiles(files: readonly RemoteFile[], repoId: string): { files: RemoteFile[]; index?: RemoteFile } {
  for (const file of files) safeSegments(file.path, repoId);
  const byPath = new Map(files.map((file) => [file.path, file]));
  if (!byPath.has("config.json")) {
    throw new UnsupportedModelError(`${repoId} has no config.json at the top level, so it is not a Transformers model repository`, [
      "Hugging Face repositories with config.json and *.safetensors",
      "GGUF repositories (pull org/repo:<quant>)",
      "any files by name (pull org/repo --include '<glob>', e.g. a llama2.c stories15M.bin)",
    ]);
  }
  const picked = METADATA_FILES.flatMap((name) => byPath.get(name) ?? []);
  if (!byPath.has("tokenizer.json") && byPath.has("tokenizer.model")) picked.push(byPath.get("tokenizer.model")!);
  const index = byPath.get(INDEX_FILE);
  if (index !== undefined) return { files: picked, index };
  const weights = files.filter((file) => !file.path.includes("/") && file.path.endsWith(".safetensors"));
  if (weights.length === 0) {
    throw new UnsupportedModelError(`${repoId} has no *.safetensors weights (only ${describeWeights(files)})`, [
      "safetensors (convert the checkpoint with transformers' save_pretrained(safe_serialization=True))",
    ]);
  }
  return { files: [...picked, ...weights] };
}

function describeWeights(files: readonly RemoteFile[]): string {
  const others = files.map((file) => file.path).filter((name) => /\.(bin|pt|pth|gguf|h5|msgpack)$/.test(name));
  return others.length === 0 ? "no weight files" : others.slice(0, 5).join(", ");
}

/** The shards an index names, each checked against the listing and for path safety. */
export function shardsFromIndex(indexText: string, files: readonly RemoteFile[], repoId: string): RemoteFile[] {
  let weightMap: unknown;
  try {
    weightMap = (JSON.parse(indexText) as { weight_map?: unknown }).weight_map;
  } catch (cause) {
    throw new HubError("download_error", `${INDEX_FILE} of ${repoId} is not valid JSON; run pull again`, { cause });
  }
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
    throw new HubError("download_error", `${INDEX_FILE} of ${repoId} has no "weight_map" object`);
  }
  const names = [...new Set(Object.values(weightMap as Record<string, unknown>))].sort();
  const byPath = new Map(files.map((file) => [file.path, file]));
  return names.map((name) => {
    if (typeof name !== "string") throw new HubError("download_error", `${INDEX_FILE} of ${repoId} maps a tensor to a non-string shard`);
    safeSegments(name, repoId);
    const file = byPath.get(name);
    if (file === undefined) {
      throw new HubError("hub_not_found", `${INDEX_FILE} of ${repoId} names shard ${name}, which the repository does not list`);
    }
    return file;
  });
}
