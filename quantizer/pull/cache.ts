/**
 * The local model cache: `$CRUMB_CACHE` (default `~/.cache/crumb/models`) holds one
 * directory per repository, `{org}--{name}`, with one snapshot directory per commit sha
 * (the files under their hub names) and `refs/{revision}` files that map a branch or tag
 * to the commit last pulled for it, so an offline run can find it again.
 */
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import process from "node:process";
import type { RepoId } from "./names.ts";

export function cacheRoot(env: Record<string, string | undefined> = process.env): string {
  const configured = env.CRUMB_CACHE;
  if (configured !== undefined && configured.trim() !== "") return path.resolve(configured);
  // HOME (USERPROFILE on Windows) first: os.homedir() needs --allow-sys under Deno.
  const home = env.HOME?.trim() || env.USERPROFILE?.trim() || os.homedir();
  return path.join(home, ".cache", "crumb", "models");
}

export function repoDir(root: string, repo: RepoId): string {
  return path.join(root, `${repo.org}--${repo.name}`);
}

export function snapshotDir(root: string, repo: RepoId, commit: string): string {
  return path.join(repoDir(root, repo), commit);
}

/** Path of the refs file for a (validated) revision; `refs/pr/1` nests like git. */
export function refPath(root: string, repo: RepoId, revision: string): string {
  return path.join(repoDir(root, repo), "refs", ...revision.split("/"));
}

export async function readRef(root: string, repo: RepoId, revision: string): Promise<string | undefined> {
  try {
    return (await fs.readFile(refPath(root, repo, revision), "utf8")).trim();
  } catch (error) {
    if ((error as { code?: unknown }).code === "ENOENT") return undefined;
    throw error;
  }
}

/** Writes the ref through a temporary file and a rename, so a reader never sees half a sha. */
export async function writeRef(root: string, repo: RepoId, revision: string, commit: string): Promise<void> {
  const target = refPath(root, repo, revision);
  await fs.mkdir(path.dirname(target), { recursive: true });
  const temporary = `${target}.${process.pid}.tmp`;
  await fs.writeFile(temporary, commit);
  await fs.rename(temporary, target);
}

export async function fileSize(file: string): Promise<number | undefined> {
  try {
    return (await fs.stat(file)).size;
  } catch (error) {
    if ((error as { code?: unknown }).code === "ENOENT") return undefined;
    throw error;
  }
}
