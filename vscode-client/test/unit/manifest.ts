// The extension's package.json, read from the package root (out/test/unit → ../../..).
import * as fs from "node:fs";
import * as path from "node:path";

export const ROOT = path.resolve(__dirname, "..", "..", "..");

export interface Manifest {
  readonly main: string;
  readonly activationEvents: string[];
  readonly contributes: {
    readonly commands: { command: string; title: string }[];
    readonly configuration: { properties: Record<string, { default?: unknown; type?: string }> };
  };
}

export function readManifest(): Manifest {
  return JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as Manifest;
}
