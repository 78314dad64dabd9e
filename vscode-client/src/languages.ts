// VS Code language ids the server completes. The server maps editor ids to its
// own grammar names (context/postprocess.py `_LANGUAGE_ALIASES`); a pytest checks
// that every id here maps to a language the server knows, and the reverse.

export const LANGUAGE_IDS = [
  "python",
  "javascript",
  "javascriptreact",
  "typescript",
  "typescriptreact",
  "java",
  "c",
  "cpp",
  "csharp",
  "php",
  "shellscript",
  "go",
  "rust",
] as const;

export type LanguageId = (typeof LANGUAGE_IDS)[number];

export interface DocumentFilter {
  readonly scheme: string;
  readonly language: string;
}

// Saved files and new unsaved buffers; other schemes (git:, output:, vscode-notebook-cell:)
// are views of text the user is not typing into.
export const SCHEMES = ["file", "untitled"] as const;

export function documentSelector(): DocumentFilter[] {
  return LANGUAGE_IDS.flatMap((language) => SCHEMES.map((scheme) => ({ scheme, language })));
}

export function activationEvents(): string[] {
  return LANGUAGE_IDS.map((language) => `onLanguage:${language}`);
}
