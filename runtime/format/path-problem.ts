/**
 * Why a path cannot be opened, in words for an error message: a missing file, a dangling or
 * looping symbolic link, a permission problem. `existsSync` answers all of these with "false",
 * and a message saying "does not exist" for a link that points to itself sends the user
 * looking in the wrong place.
 */
import { lstatSync, statSync } from "node:fs";

/** undefined when `path` can be stat'ed; else what is wrong with it ("does not exist", ...). */
export function pathProblem(path: string): string | undefined {
  try {
    statSync(path);
    return undefined;
  } catch (error) {
    const code = (error as { code?: string }).code;
    switch (code) {
      case "ENOENT":
        return isLink(path) ? "is a symbolic link to a file that does not exist" : "does not exist (no such file or directory)";
      case "ELOOP":
        return "is a symbolic link loop (following it leads back to itself); point the link at the real file";
      case "EACCES":
      case "EPERM":
        return "cannot be read: permission denied";
      case "ENOTDIR":
        return "does not exist (a part of the path is a file, not a directory)";
      case "ENAMETOOLONG":
        return "is longer than the system allows";
      default:
        return `cannot be opened (${code ?? (error as Error).message})`;
    }
  }
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
