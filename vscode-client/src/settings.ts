// Settings → server command line and server settings object. No `vscode` import:
// extension.ts passes in lookups so that this logic is testable under plain node.

export const SECTION = "codellama";

/**
 * Keys (relative to the section) that configure the extension itself. They are
 * never sent to the server, which reports unknown keys as warnings, and they are
 * kept when the server's schema is regenerated into package.json.
 */
export const EXTENSION_KEY_PREFIXES = ["server.", "trace."] as const;

export function isExtensionKey(key: string): boolean {
  const relative = key.startsWith(`${SECTION}.`) ? key.slice(SECTION.length + 1) : key;
  return EXTENSION_KEY_PREFIXES.some((prefix) => relative.startsWith(prefix));
}

export interface LaunchSettings {
  /** `codellama.server.path`: the console script, found on PATH when not absolute. */
  readonly path?: string | undefined;
  /** `codellama.server.pythonPath`: when set, the server runs as a module of this interpreter. */
  readonly pythonPath?: string | undefined;
}

export interface ServerCommand {
  readonly command: string;
  readonly args: string[];
}

export const DEFAULT_SERVER_PATH = "codellama-lsp";
export const SERVER_MODULE = "codellama_lsp.server";

/** `~/x` → `<home>/x`: VS Code does not expand it and spawn() would look for a `~` directory. */
export function expandHome(path: string, home: string | undefined): string {
  if (home && (path === "~" || path.startsWith("~/") || path.startsWith("~\\"))) {
    return home + path.slice(1);
  }
  return path;
}

export function serverCommand(settings: LaunchSettings, home?: string): ServerCommand {
  const python = settings.pythonPath?.trim();
  if (python) {
    // A virtualenv's interpreter finds the package even when its bin/ is not on PATH.
    return { command: expandHome(python, home), args: ["-m", SERVER_MODULE, "--stdio"] };
  }
  const path = settings.path?.trim() || DEFAULT_SERVER_PATH;
  return { command: expandHome(path, home), args: ["--stdio"] };
}

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/**
 * The server's settings as a nested object (`{model: {path: ...}}`), the shape the
 * server documents, built from the setting keys the extension declares.
 */
export function serverSettings(
  keys: readonly string[],
  get: (key: string) => JsonValue | undefined,
): JsonObject {
  const result: JsonObject = {};
  for (const full of keys) {
    const key = full.startsWith(`${SECTION}.`) ? full.slice(SECTION.length + 1) : full;
    if (isExtensionKey(key)) {
      continue;
    }
    const value = get(key);
    if (value === undefined) {
      continue;
    }
    const parts = key.split(".");
    let node = result;
    for (const part of parts.slice(0, -1)) {
      const child = node[part];
      if (typeof child !== "object" || child === null || Array.isArray(child)) {
        node[part] = {};
      }
      node = node[part] as JsonObject;
    }
    node[parts[parts.length - 1]!] = value;
  }
  return result;
}

/** Drop the extension's own keys from a section object VS Code hands out whole. */
export function withoutExtensionKeys(section: JsonValue | undefined): JsonValue | undefined {
  if (typeof section !== "object" || section === null || Array.isArray(section)) {
    return section;
  }
  const result: JsonObject = {};
  for (const [name, value] of Object.entries(section)) {
    // `name` is a top-level group such as "server"; its dotted form is a prefix.
    if (!(EXTENSION_KEY_PREFIXES as readonly string[]).includes(`${name}.`)) {
      result[name] = value;
    }
  }
  return result;
}

export interface ManifestLike {
  readonly contributes?: { readonly configuration?: { readonly properties?: Record<string, unknown> } };
}

/** Every `codellama.*` key the extension declares, from its own package.json. */
export function declaredKeys(manifest: ManifestLike): string[] {
  const properties = manifest.contributes?.configuration?.properties ?? {};
  return Object.keys(properties).filter((key) => key.startsWith(`${SECTION}.`));
}

export interface InspectedValue {
  readonly workspaceValue?: unknown;
  readonly workspaceFolderValue?: unknown;
}

export type Target = "global" | "workspace";

/**
 * Where enable/disable writes `codellama.enable`: a workspace value would shadow a
 * user-level change, so it is changed where it is set.
 */
export function updateTarget(inspected: InspectedValue | undefined): Target {
  return inspected?.workspaceValue !== undefined ? "workspace" : "global";
}
