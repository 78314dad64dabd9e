import assert from "node:assert/strict";
import { test } from "node:test";

import {
  declaredKeys,
  expandHome,
  isExtensionKey,
  type JsonValue,
  serverCommand,
  serverSettings,
  updateTarget,
  withoutExtensionKeys,
} from "../../src/settings";
import { readManifest } from "./manifest";

test("default command is the console script with --stdio", () => {
  assert.deepEqual(serverCommand({}), { command: "codellama-lsp", args: ["--stdio"] });
  assert.deepEqual(serverCommand({ path: "  ", pythonPath: "" }), {
    command: "codellama-lsp",
    args: ["--stdio"],
  });
  assert.deepEqual(serverCommand({ path: "/opt/venv/bin/codellama-lsp" }), {
    command: "/opt/venv/bin/codellama-lsp",
    args: ["--stdio"],
  });
});

test("pythonPath wins and runs the server module", () => {
  assert.deepEqual(serverCommand({ path: "/x/codellama-lsp", pythonPath: "/v/bin/python" }), {
    command: "/v/bin/python",
    args: ["-m", "codellama_lsp.server", "--stdio"],
  });
});

test("a leading ~ is expanded, other tildes are not", () => {
  assert.equal(serverCommand({ path: "~/venv/bin/codellama-lsp" }, "/home/u").command, "/home/u/venv/bin/codellama-lsp");
  assert.equal(serverCommand({ pythonPath: "~/py" }, "/home/u").command, "/home/u/py");
  assert.equal(expandHome("a~/b", "/home/u"), "a~/b");
  assert.equal(expandHome("~user/b", "/home/u"), "~user/b");
  assert.equal(expandHome("~/b", undefined), "~/b");
});

test("extension keys are recognised with or without the section", () => {
  assert.ok(isExtensionKey("server.path"));
  assert.ok(isExtensionKey("codellama.server.pythonPath"));
  assert.ok(isExtensionKey("codellama.trace.server"));
  assert.ok(!isExtensionKey("codellama.model.path"));
  assert.ok(!isExtensionKey("serverish"));
});

test("server settings are nested, skip undefined and the extension's keys", () => {
  const values: Record<string, JsonValue> = {
    enable: true,
    "model.path": "/m.gguf",
    "model.nCtx": 4096,
    "context.exclude": ["vendor/"],
    "server.path": "codellama-lsp",
    "trace.server": "off",
  };
  const keys = [
    "codellama.enable",
    "codellama.model.path",
    "codellama.model.nCtx",
    "codellama.model.threads",
    "codellama.context.exclude",
    "codellama.server.path",
    "codellama.trace.server",
  ];
  assert.deepEqual(
    serverSettings(keys, (k) => values[k]),
    { enable: true, model: { path: "/m.gguf", nCtx: 4096 }, context: { exclude: ["vendor/"] } },
  );
});

test("the section VS Code hands out whole loses only the extension's groups", () => {
  const section = { enable: false, model: { path: "" }, server: { path: "x" }, trace: { server: "off" } };
  assert.deepEqual(withoutExtensionKeys(section), { enable: false, model: { path: "" } });
  assert.equal(withoutExtensionKeys(null), null);
  assert.equal(withoutExtensionKeys(undefined), undefined);
});

test("every declared setting reaches the server except the extension's own", () => {
  const manifest = readManifest();
  const keys = declaredKeys(manifest);
  const props = manifest.contributes.configuration.properties;
  const sent = serverSettings(keys, (k) => props[`codellama.${k}`]?.default as JsonValue);
  const flat = (obj: JsonValue, prefix = ""): string[] =>
    typeof obj === "object" && obj !== null && !Array.isArray(obj)
      ? Object.entries(obj).flatMap(([k, v]) => flat(v, `${prefix}${k}.`))
      : [prefix.slice(0, -1)];
  assert.deepEqual(
    flat(sent).sort(),
    keys.filter((k) => !isExtensionKey(k)).map((k) => k.slice("codellama.".length)).sort(),
  );
  for (const own of ["codellama.server.path", "codellama.server.pythonPath", "codellama.trace.server"]) {
    assert.ok(keys.includes(own), own);
  }
});

test("enable is written where it is set", () => {
  assert.equal(updateTarget(undefined), "global");
  assert.equal(updateTarget({}), "global");
  assert.equal(updateTarget({ workspaceValue: false }), "workspace");
});
