// Names and shapes of the server's custom messages (server/model.py,
// server/last_prompt.py). Kept free of `vscode` so tests can use them.

export const STATUS_METHOD = "codellama/status";
export const LAST_PROMPT_METHOD = "codellama/lastPrompt";
/** Tells the server where the user is looking, so it can warm that prompt while they are idle. */
export const DOCUMENT_ACTIVE_METHOD = "codellama/documentActive";
/** Today's acceptance counts of every server on this machine (server/stats.py). */
export const STATS_METHOD = "codellama/stats";
/** The command on every inline item; the client executes it after an accept (LSP 3.18). */
export const ACCEPTED_COMMAND = "codellama.suggestionAccepted";

/** `codellama/stats`: counts only, kept locally; `enabled` false with `stats.enable` off. */
export interface TodayStats {
  readonly enabled: boolean;
  readonly shown: number;
  readonly accepted: number;
}

export function isTodayStats(value: unknown): value is TodayStats {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const { enabled, shown, accepted } = value as Record<string, unknown>;
  if (enabled === false) {
    return true;
  }
  return enabled === true && typeof shown === "number" && typeof accepted === "number";
}

/** "Today: 3 of 10 accepted (30%)", or undefined when there is nothing to say. */
export function todayLine(stats: TodayStats | undefined): string | undefined {
  if (!stats || !stats.enabled) {
    return undefined;
  }
  if (stats.shown === 0) {
    return "Today: no suggestions shown yet";
  }
  const rate = Math.round((100 * Math.min(stats.accepted, stats.shown)) / stats.shown);
  return `Today: ${stats.accepted} of ${stats.shown} accepted (${rate}%)`;
}

export interface DocumentActiveParams {
  readonly textDocument: { readonly uri: string };
  readonly position: { readonly line: number; readonly character: number };
}

export function documentActiveParams(uri: string, line: number, character: number): DocumentActiveParams {
  return { textDocument: { uri }, position: { line, character } };
}

// Known states; others (a newer server) are still shown, with their message.
export const SERVER_STATES = [
  "downloading",
  "loading",
  "ready",
  "error",
  "no-model",
  "indexing",
  "indexed",
] as const;
export type ServerState = (typeof SERVER_STATES)[number];

export interface StatusParams {
  readonly state: string;
  readonly message: string;
}

export function isStatusParams(value: unknown): value is StatusParams {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const { state, message } = value as Record<string, unknown>;
  return typeof message === "string" && typeof state === "string";
}

export interface ContextChunk {
  readonly path: string;
  readonly startLine: number;
  readonly endLine: number;
  readonly source: string;
  readonly name: string;
}

/** `codellama/lastPrompt` before any completion: only the answer counters. */
export interface NoPrompt {
  readonly answers: Record<string, number>;
}

export interface LastPrompt extends NoPrompt {
  readonly uri: string;
  readonly position: { readonly line: number; readonly character: number };
  readonly prompt: string;
  /** Newer servers: which model or remote server answered. */
  readonly backend?: string;
  readonly fimOrder: string;
  readonly promptTokens: number;
  readonly reusedTokens: number;
  readonly contextTokens: number;
  readonly contextKept: boolean;
  readonly evaluatedTokens: number;
  readonly generatedTokens: number;
  readonly draftedTokens: number;
  readonly acceptedTokens: number;
  readonly stopReason: string | null;
  readonly context: readonly ContextChunk[];
  readonly completion: string;
  readonly ttftMs: number;
  readonly totalMs: number;
}

export type LastPromptResult = LastPrompt | NoPrompt | null;

export function hasPrompt(result: LastPromptResult): result is LastPrompt {
  return result !== null && typeof (result as Partial<LastPrompt>).prompt === "string";
}

/** The text of the "show last prompt" document: a short header, then the exact prompt. */
export function lastPromptDocument(result: LastPromptResult): string {
  if (!hasPrompt(result)) {
    return "No completion has been requested yet: there is no prompt to show.\n";
  }
  const header = [
    `uri: ${result.uri}`,
    `position: line ${result.position.line + 1}, character ${result.position.character + 1}`,
    ...(result.backend ? [`backend: ${result.backend}`] : []),
    `fim order: ${result.fimOrder}`,
    `prompt tokens: ${result.promptTokens} (reused ${result.reusedTokens}, context ${result.contextTokens})`,
    `generated tokens: ${result.generatedTokens}, stop: ${result.stopReason ?? "-"}`,
    `latency: first token ${result.ttftMs} ms, total ${result.totalMs} ms`,
    `completion: ${JSON.stringify(result.completion)}`,
    ...result.context.map(
      // Line numbers as the server reports them.
      (c) => `context: ${c.path}:${c.startLine}-${c.endLine} (${c.source}${c.name ? ` ${c.name}` : ""})`,
    ),
  ];
  const rule = "-".repeat(72);
  return `${header.join("\n")}\n${rule}\n${result.prompt}`;
}
