import assert from "node:assert/strict";
import { test } from "node:test";

import { formatMs, initialStatus, modelNameFrom, reduce, render, type StatusEvent } from "../../src/status";

const server = (state: string, message: string): StatusEvent => ({ kind: "server", params: { state, message } });

function run(...events: StatusEvent[]) {
  return events.reduce(reduce, initialStatus(true));
}

test("starts spinning, then shows the ready model", () => {
  assert.match(render(initialStatus(true)).text, /loading~spin/);
  const state = run({ kind: "running" }, server("loading", "loading /models/cl-7b.gguf"), server("ready", "cl-7b.gguf ready"));
  assert.equal(state.model, "ready");
  assert.equal(state.modelName, "cl-7b.gguf");
  const view = render(state);
  assert.equal(view.text, "$(sparkle) Code Llama · llama.cpp");
  assert.match(view.tooltip, /Backend: llama\.cpp, in the server process \(cl-7b\.gguf\)/);
  assert.equal(view.severity, "normal");
});

test("latency appears once known and is forgotten on a model reload", () => {
  let state = run(server("ready", "m.gguf ready"), { kind: "latency", latency: { ttftMs: 12.3, totalMs: 85.6 } });
  assert.equal(render(state).text, "$(sparkle) Code Llama · llama.cpp · 86 ms");
  assert.match(render(state).tooltip, /Last completion: 86 ms \(first token 12 ms\)/);
  state = reduce(state, server("loading", "loading /b.gguf"));
  assert.equal(state.latency, undefined);
  assert.equal(state.modelName, "b.gguf");
});

test("index progress does not hide the model state", () => {
  let state = run(server("ready", "m.gguf ready"), server("indexing", "indexing /w"));
  assert.equal(state.model, "ready");
  assert.match(render(state).text, /sync~spin/);
  assert.match(render(state).tooltip, /Index: indexing - indexing \/w/);
  state = reduce(state, server("indexed", "120 files"));
  assert.equal(render(state).text, "$(sparkle) Code Llama · llama.cpp");
  assert.match(render(state).tooltip, /Index: indexed - 120 files/);
});

test("no model and errors are flagged", () => {
  const none = render(run(server("no-model", "no model configured")));
  assert.equal(none.severity, "warning");
  assert.match(none.text, /\$\(warning\)/);
  const failed = render(run(server("loading", "loading /x.gguf"), server("error", "bad magic")));
  assert.equal(failed.severity, "error");
  assert.match(failed.tooltip, /Model: error - bad magic/);
});

test("a stopped server ignores late messages until restarted", () => {
  let state = run(server("ready", "m.gguf ready"), { kind: "stopped" });
  assert.equal(state.model, "stopped");
  state = reduce(state, server("ready", "m.gguf ready"));
  assert.equal(state.model, "stopped");
  assert.equal(render(state).severity, "error");
  state = reduce(state, { kind: "starting" });
  assert.equal(state.model, "starting");
  assert.equal(state.modelName, undefined);
});

test("a stopped server says why, and a click offers recovery instead of the toggle", () => {
  const running = render(run(server("ready", "m.gguf ready")));
  assert.equal(running.command, "codellama.toggle");
  const view = render(run(server("ready", "m.gguf ready"), { kind: "stopped", reason: "the server was killed (SIGKILL)" }));
  assert.equal(view.severity, "error");
  assert.equal(view.command, "codellama.serverActions");
  assert.match(view.tooltip, /the server is not running/);
  assert.match(view.tooltip, /Why: the server was killed \(SIGKILL\)/);
  assert.match(view.tooltip, /Click to restart the server, show its log or open the settings/);
  assert.doesNotMatch(view.tooltip, /Click to (en|dis)able/);
  // Disabled and stopped: still the recovery, and the tooltip says suggestions are off.
  const off = render(run({ kind: "enabled", enabled: false }, { kind: "stopped", reason: "could not start x: not found" }));
  assert.equal(off.command, "codellama.serverActions");
  assert.match(off.tooltip, /Inline suggestions: disabled/);
  assert.equal(render(run({ kind: "stopped" }, { kind: "starting" })).command, "codellama.toggle");
});

test("disabled overrides the icon and the click hint", () => {
  const state = run(server("ready", "m.gguf ready"), { kind: "latency", latency: { ttftMs: 1, totalMs: 2 } }, { kind: "enabled", enabled: false });
  const view = render(state);
  assert.equal(view.text, "$(circle-slash) Code Llama · llama.cpp");
  assert.match(view.tooltip, /Click to enable/);
  assert.match(render(reduce(state, { kind: "enabled", enabled: true })).tooltip, /Click to disable/);
});

test("states from a newer server are shown, not dropped", () => {
  const state = run(server("downloading", "downloading cl-7b (3.8 GB)"));
  assert.equal(state.model, "downloading");
  const other = run(server("warming-up", "warming up"));
  assert.equal(other.model, "other");
  assert.match(render(other).tooltip, /warming up/);
});

test("model names from messages", () => {
  assert.equal(modelNameFrom({ state: "loading", message: "loading C:\\m\\a.gguf" }), "a.gguf");
  assert.equal(modelNameFrom({ state: "error", message: "boom" }), undefined);
});

test("milliseconds are formatted for a status bar", () => {
  assert.equal(formatMs(0.4), "0 ms");
  assert.equal(formatMs(999.4), "999 ms");
  assert.equal(formatMs(1520), "1.5 s");
  assert.equal(formatMs(12500), "13 s");
  assert.equal(formatMs(Number.NaN), "?");
});

test("the backend is named and a switch forgets the old timings", () => {
  let state = run(server("ready", "m.gguf ready"), { kind: "latency", latency: { ttftMs: 1, totalMs: 2 } });
  state = reduce(state, { kind: "backend", backend: "local" });
  assert.ok(state.latency, "same backend keeps the latency");
  state = reduce(state, { kind: "backend", backend: "llama-server" });
  assert.equal(state.latency, undefined);
  state = reduce(state, server("ready", "llama-server at http://127.0.0.1:8080"));
  assert.equal(render(state).text, "$(sparkle) Code Llama · llama-server");
  assert.match(render(state).tooltip, /Backend: llama\.cpp's llama-server/);
  assert.match(render(state).tooltip, /Model: ready - llama-server at http:\/\/127\.0\.0\.1:8080/);
  assert.equal(render(reduce(state, { kind: "backend", backend: "openai" })).text, "$(sparkle) Code Llama · OpenAI API");
  assert.equal(render(initialStatus(true, "something-new")).text, "$(loading~spin) Code Llama · something-new");
  // A restart keeps the configured backend.
  assert.equal(reduce(state, { kind: "starting" }).backend, "llama-server");
});

test("the tooltip shows today's acceptance rate once the server has said", () => {
  let state = run(server("ready", "m.gguf ready"));
  assert.doesNotMatch(render(state).tooltip, /Today/);
  state = reduce(state, { kind: "today", today: { enabled: true, shown: 10, accepted: 3 } });
  assert.match(render(state).tooltip, /^Today: 3 of 10 accepted \(30%\)$/m);
  state = reduce(state, { kind: "today", today: { enabled: true, shown: 0, accepted: 0 } });
  assert.match(render(state).tooltip, /Today: no suggestions shown yet/);
  // stats.enable off: nothing is counted, so nothing is claimed.
  state = reduce(state, { kind: "today", today: { enabled: false, shown: 0, accepted: 0 } });
  assert.doesNotMatch(render(state).tooltip, /Today/);
  // A new server process is asked again.
  assert.equal(reduce(state, { kind: "starting" }).today, undefined);
});
