// The status bar item as a pure state machine: events in, text/tooltip out.
// The model and the workspace index report independently (the server loads both
// side by side), so they are tracked as two fields rather than one state.

import { type StatusParams, type TodayStats, todayLine } from "./protocol";

export type ModelState =
  | "starting"
  | "downloading"
  | "loading"
  | "ready"
  | "error"
  | "no-model"
  | "stopped"
  | "other";

const MODEL_STATES: readonly string[] = ["downloading", "loading", "ready", "error", "no-model"];
export type IndexState = "none" | "indexing" | "indexed";

/** Short names of `codellama.backend.type` values, for the status bar. */
const BACKEND_NAMES: Record<string, string> = {
  local: "llama.cpp",
  "llama-server": "llama-server",
  openai: "OpenAI API",
};
/** Longer descriptions, for the tooltip. */
const BACKEND_DESCRIPTIONS: Record<string, string> = {
  local: "llama.cpp, in the server process",
  "llama-server": "llama.cpp's llama-server",
  openai: "an OpenAI-compatible server",
};

export function backendName(type: string): string {
  return BACKEND_NAMES[type] ?? type;
}

export interface Latency {
  readonly ttftMs: number;
  readonly totalMs: number;
}

export interface StatusState {
  readonly enabled: boolean;
  /** `codellama.backend.type`: where the server computes completions. */
  readonly backend: string;
  readonly model: ModelState;
  readonly modelMessage: string;
  /** File name of the model being loaded or served, when known. */
  readonly modelName: string | undefined;
  readonly index: IndexState;
  readonly indexMessage: string;
  readonly latency: Latency | undefined;
  /** Today's acceptance (`codellama/stats`), when the server has said. */
  readonly today?: TodayStats;
}

export type StatusEvent =
  | { readonly kind: "starting" }
  | { readonly kind: "running" }
  | { readonly kind: "stopped"; readonly reason?: string }
  | { readonly kind: "server"; readonly params: StatusParams }
  | { readonly kind: "enabled"; readonly enabled: boolean }
  | { readonly kind: "backend"; readonly backend: string }
  | { readonly kind: "latency"; readonly latency: Latency }
  | { readonly kind: "today"; readonly today: TodayStats };

export function initialStatus(enabled: boolean, backend = "local"): StatusState {
  return {
    enabled,
    backend,
    model: "starting",
    modelMessage: "starting the server",
    modelName: undefined,
    index: "none",
    indexMessage: "",
    latency: undefined,
  };
}

function baseName(path: string): string {
  const parts = path.split(/[\\/]/);
  return parts[parts.length - 1] ?? path;
}

/** Model file name from the server's messages ("loading /m/x.gguf", "x.gguf ready"). */
export function modelNameFrom(params: StatusParams): string | undefined {
  if (params.state === "loading" && params.message.startsWith("loading ")) {
    return baseName(params.message.slice("loading ".length));
  }
  if (params.state === "ready" && params.message.endsWith(" ready")) {
    return params.message.slice(0, -" ready".length);
  }
  return undefined;
}

export function reduce(state: StatusState, event: StatusEvent): StatusState {
  switch (event.kind) {
    case "starting":
      // A new server process knows nothing of the old one's model or index.
      return initialStatus(state.enabled, state.backend);
    case "running":
      // Still waiting for the server's first codellama/status.
      return state.model === "starting" ? { ...state, modelMessage: "server started" } : state;
    case "stopped":
      return {
        ...state,
        model: "stopped",
        modelMessage: event.reason ?? "server stopped",
        index: "none",
        indexMessage: "",
      };
    case "enabled":
      return { ...state, enabled: event.enabled };
    case "backend":
      // Timings of another backend would mislead.
      return event.backend === state.backend ? state : { ...state, backend: event.backend, latency: undefined };
    case "latency":
      return { ...state, latency: event.latency };
    case "today":
      return { ...state, today: event.today };
    case "server": {
      const { state: serverState, message } = event.params;
      if (serverState === "indexing" || serverState === "indexed") {
        return { ...state, index: serverState, indexMessage: message };
      }
      if (state.model === "stopped") {
        return state; // a late message from a server that is going away
      }
      const model = (MODEL_STATES.includes(serverState) ? serverState : "other") as ModelState;
      const modelName =
        model === "no-model" ? undefined : (modelNameFrom(event.params) ?? state.modelName);
      // A new model means earlier latencies say nothing about it.
      const latency = model === "loading" || model === "downloading" ? undefined : state.latency;
      return { ...state, model, modelMessage: message, modelName, latency };
    }
  }
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) {
    return "?";
  }
  if (ms < 1000) {
    return `${Math.round(ms)} ms`;
  }
  return `${(ms / 1000).toFixed(ms < 10000 ? 1 : 0)} s`;
}

export type Severity = "normal" | "warning" | "error";

export interface StatusView {
  readonly text: string;
  readonly tooltip: string;
  readonly severity: Severity;
  /** What a click runs: the toggle while a server runs, the recovery choices when none does. */
  readonly command: string;
}

export const TOGGLE_COMMAND = "codellama.toggle";
export const SERVER_ACTIONS_COMMAND = "codellama.serverActions";

const ICONS: Record<ModelState, string> = {
  starting: "$(loading~spin)",
  downloading: "$(cloud-download)",
  loading: "$(loading~spin)",
  ready: "$(sparkle)",
  error: "$(error)",
  "no-model": "$(warning)",
  stopped: "$(debug-disconnect)",
  other: "$(info)",
};

const LABEL = "Code Llama";

export function render(state: StatusState): StatusView {
  let icon = ICONS[state.model];
  if (state.model === "ready" && state.index === "indexing") {
    icon = "$(sync~spin)";
  }
  if (!state.enabled) {
    icon = "$(circle-slash)";
  }
  let text = `${icon} ${LABEL} · ${backendName(state.backend)}`;
  if (state.enabled && state.model === "ready" && state.latency) {
    text += ` · ${formatMs(state.latency.totalMs)}`;
  }

  if (state.model === "stopped") {
    // Nothing is running to enable or disable: say why, and what a click offers instead.
    const lines = [
      `${LABEL}: the server is not running`,
      `Why: ${state.modelMessage}`,
      `Backend: ${BACKEND_DESCRIPTIONS[state.backend] ?? state.backend}`,
      `Inline suggestions: ${state.enabled ? "enabled" : "disabled"} (when the server runs)`,
      "Click to restart the server, show its log or open the settings",
    ];
    return { text, tooltip: lines.join("\n"), severity: "error", command: SERVER_ACTIONS_COMMAND };
  }

  const lines = [`${LABEL}: ${state.enabled ? "enabled" : "disabled"}`];
  lines.push(
    `Backend: ${BACKEND_DESCRIPTIONS[state.backend] ?? state.backend}${state.modelName ? ` (${state.modelName})` : ""}`,
    `Model: ${state.model} - ${state.modelMessage}`,
  );
  if (state.index !== "none") {
    lines.push(`Index: ${state.index} - ${state.indexMessage}`);
  }
  if (state.latency) {
    lines.push(
      `Last completion: ${formatMs(state.latency.totalMs)} (first token ${formatMs(state.latency.ttftMs)})`,
    );
  }
  const today = todayLine(state.today);
  if (today) {
    lines.push(today);
  }
  lines.push(state.enabled ? "Click to disable inline suggestions" : "Click to enable inline suggestions");

  let severity: Severity = "normal";
  if (state.model === "error") {
    severity = "error";
  } else if (state.model === "no-model") {
    severity = "warning";
  }
  return { text, tooltip: lines.join("\n"), severity, command: TOGGLE_COMMAND };
}
