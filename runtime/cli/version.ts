/** crumb's version, read from package.json (bundled into the single-file executable). */
import manifest from "../../package.json" with { type: "json" };

export const CRUMB_VERSION: string = manifest.version;
