// VS Code glue: starts codellama-lsp, keeps its settings in sync, and shows its
// state in the status bar. Everything decidable without VS Code lives in the
// other modules (tested under plain node).

import * as os from "node:os";
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
} from "vscode-languageclient/node";

import { documentSelector } from "./languages";
import {
  DOCUMENT_ACTIVE_METHOD,
  documentActiveParams,
  hasPrompt,
  isStatusParams,
  LAST_PROMPT_METHOD,
  lastPromptDocument,
  type LastPromptResult,
  STATUS_METHOD,
} from "./protocol";
import {
  declaredKeys,
  type JsonObject,
  type JsonValue,
  SECTION,
  serverCommand,
  serverSettings,
  updateTarget,
  withoutExtensionKeys,
} from "./settings";
import { initialStatus, reduce, render, type StatusEvent, type StatusState } from "./status";

/** Wait after the last suggestion before asking the server for its timings. */
const LATENCY_REFRESH_MS = 400;
/** Wait after an editor switch or a cursor move before telling the server (it warms that place). */
const ACTIVE_NOTIFY_MS = 250;

class Extension implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private readonly output: vscode.LogOutputChannel;
  private readonly item: vscode.StatusBarItem;
  private status: StatusState;
  private latencyTimer: NodeJS.Timeout | undefined;
  private activeTimer: NodeJS.Timeout | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly keys: string[];

  constructor(private readonly context: vscode.ExtensionContext) {
    this.output = vscode.window.createOutputChannel("Code Llama", { log: true });
    this.item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
    this.item.name = "Code Llama";
    this.item.command = "codellama.toggle";
    this.status = initialStatus(this.config().get<boolean>("enable", true), this.backendType());
    this.keys = declaredKeys(context.extension.packageJSON as Parameters<typeof declaredKeys>[0]);
    this.disposables.push(this.output, this.item);
    this.update({ kind: "starting" });
    this.item.show();
  }

  private backendType(): string {
    return this.config().get<string>("backend.type", "local");
  }

  private config(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
  }

  /** The settings object the server parses (core/settings.py), without the extension's keys. */
  private serverSettings(): JsonObject {
    const config = this.config();
    return serverSettings(this.keys, (key) => config.get<JsonValue>(key));
  }

  private update(event: StatusEvent): void {
    this.status = reduce(this.status, event);
    const view = render(this.status);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.backgroundColor =
      view.severity === "normal"
        ? undefined
        : new vscode.ThemeColor(
            view.severity === "error" ? "statusBarItem.errorBackground" : "statusBarItem.warningBackground",
          );
  }

  async start(): Promise<void> {
    const launch = this.config();
    const { command, args } = serverCommand(
      { path: launch.get<string>("server.path"), pythonPath: launch.get<string>("server.pythonPath") },
      os.homedir(),
    );
    this.output.info(`Starting ${command} ${args.join(" ")}`);
    const serverOptions: ServerOptions = { command, args };
    const clientOptions: LanguageClientOptions = {
      documentSelector: documentSelector(),
      initializationOptions: this.serverSettings(),
      outputChannel: this.output,
      middleware: {
        // Disabled: do not even ask (the server would answer an empty list anyway).
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          if (!this.status.enabled) {
            return null;
          }
          const result = await next(document, position, context, token);
          const items = Array.isArray(result) ? result : result?.items;
          if (items && items.length > 0) {
            this.scheduleLatencyRefresh();
          }
          return result;
        },
        workspace: {
          // The pull model hands out the whole section; strip keys the server does not know.
          configuration: async (params, token, next) => {
            const result = await next(params, token);
            if (!Array.isArray(result)) {
              return result;
            }
            return params.items.map((item, i) =>
              item.section === SECTION ? withoutExtensionKeys(result[i] as JsonValue) : result[i],
            );
          },
        },
      },
    };
    const client = new LanguageClient(SECTION, "Code Llama", serverOptions, clientOptions);
    this.client = client;
    client.onNotification(STATUS_METHOD, (params: unknown) => {
      if (isStatusParams(params)) {
        this.update({ kind: "server", params });
      }
    });
    client.onDidChangeState(({ newState }) => {
      if (this.client !== client) {
        return; // an old client going away after a restart
      }
      if (newState === State.Starting) {
        this.update({ kind: "starting" });
      } else if (newState === State.Running) {
        this.update({ kind: "running" });
      } else {
        this.update({ kind: "stopped" });
      }
    });
    this.update({ kind: "starting" });
    try {
      await client.start();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.output.error(`The server did not start: ${message}`);
      this.update({ kind: "stopped", reason: `could not start ${command}: ${message}` });
      const choice = await vscode.window.showErrorMessage(
        `Code Llama: could not start ${command}. Install codellama-lsp or set codellama.server.path / codellama.server.pythonPath.`,
        "Open Settings",
        "Show Log",
      );
      if (choice === "Open Settings") {
        await vscode.commands.executeCommand("workbench.action.openSettings", "codellama.server");
      } else if (choice === "Show Log") {
        this.output.show();
      }
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) {
      try {
        await client.stop(5000);
      } catch (error) {
        this.output.error(`Stopping the server failed: ${String(error)}`);
      }
      await client.dispose().catch(() => undefined);
    }
  }

  async restart(): Promise<void> {
    // A new client, not client.restart(): the command line may have changed.
    await this.stop();
    await this.start();
  }

  /** Push the settings (workspace/didChangeConfiguration), or restart when the launch changed. */
  async onConfigurationChanged(event: vscode.ConfigurationChangeEvent): Promise<void> {
    if (!event.affectsConfiguration(SECTION)) {
      return;
    }
    this.update({ kind: "enabled", enabled: this.config().get<boolean>("enable", true) });
    this.update({ kind: "backend", backend: this.backendType() });
    if (event.affectsConfiguration(`${SECTION}.server`)) {
      await this.restart();
      return;
    }
    const client = this.client;
    if (client?.isRunning()) {
      // Wrapped in the section, the shape vscode-languageclient's own sync sends.
      await client.sendNotification(DidChangeConfigurationNotification.type, {
        settings: { [SECTION]: this.serverSettings() },
      });
    }
  }

  private scheduleLatencyRefresh(): void {
    if (this.latencyTimer) {
      clearTimeout(this.latencyTimer);
    }
    this.latencyTimer = setTimeout(() => {
      this.latencyTimer = undefined;
      void this.lastPrompt().then((result) => {
        if (hasPrompt(result)) {
          this.update({ kind: "latency", latency: { ttftMs: result.ttftMs, totalMs: result.totalMs } });
        }
      });
    }, LATENCY_REFRESH_MS);
  }

  /** After a pause, say which document and position the user is at (`codellama/documentActive`). */
  private scheduleDocumentActive(editor: vscode.TextEditor | undefined): void {
    if (this.activeTimer) {
      clearTimeout(this.activeTimer);
    }
    if (!editor || !this.status.enabled) {
      return;
    }
    this.activeTimer = setTimeout(() => {
      this.activeTimer = undefined;
      const client = this.client;
      if (!client?.isRunning() || vscode.window.activeTextEditor !== editor) {
        return;
      }
      const at = editor.selection.active;
      const params = documentActiveParams(editor.document.uri.toString(), at.line, at.character);
      client.sendNotification(DOCUMENT_ACTIVE_METHOD, params).catch(() => undefined);
    }, ACTIVE_NOTIFY_MS);
  }

  private async lastPrompt(): Promise<LastPromptResult> {
    const client = this.client;
    if (!client?.isRunning()) {
      return null;
    }
    try {
      return await client.sendRequest<LastPromptResult>(LAST_PROMPT_METHOD, {});
    } catch (error) {
      this.output.error(`${LAST_PROMPT_METHOD} failed: ${String(error)}`);
      return null;
    }
  }

  async setEnabled(enabled: boolean): Promise<void> {
    const config = this.config();
    const target =
      updateTarget(config.inspect("enable")) === "workspace"
        ? vscode.ConfigurationTarget.Workspace
        : vscode.ConfigurationTarget.Global;
    // onConfigurationChanged tells the server and the status bar.
    await config.update("enable", enabled, target);
  }

  async showLastPrompt(): Promise<void> {
    if (!this.client?.isRunning()) {
      void vscode.window.showWarningMessage("Code Llama: the server is not running.");
      return;
    }
    const result = await this.lastPrompt();
    // plaintext: a document in a completed language would itself get suggestions.
    const document = await vscode.workspace.openTextDocument({
      content: lastPromptDocument(result),
      language: "plaintext",
    });
    await vscode.window.showTextDocument(document, { preview: true });
  }

  registerCommands(): void {
    const commands: Record<string, () => unknown> = {
      "codellama.enable": () => this.setEnabled(true),
      "codellama.disable": () => this.setEnabled(false),
      "codellama.toggle": () => this.setEnabled(!this.status.enabled),
      "codellama.restartServer": () => this.restart(),
      "codellama.showLog": () => this.output.show(),
      "codellama.showLastPrompt": () => this.showLastPrompt(),
    };
    for (const [name, handler] of Object.entries(commands)) {
      this.disposables.push(vscode.commands.registerCommand(name, handler));
    }
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((event) => void this.onConfigurationChanged(event)),
      vscode.window.onDidChangeActiveTextEditor((editor) => this.scheduleDocumentActive(editor)),
      vscode.window.onDidChangeTextEditorSelection((event) => this.scheduleDocumentActive(event.textEditor)),
    );
  }

  dispose(): void {
    if (this.latencyTimer) {
      clearTimeout(this.latencyTimer);
    }
    if (this.activeTimer) {
      clearTimeout(this.activeTimer);
    }
    for (const disposable of this.disposables) {
      disposable.dispose();
    }
  }
}

let extension: Extension | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extension = new Extension(context);
  context.subscriptions.push(extension);
  extension.registerCommands();
  await extension.start();
}

export async function deactivate(): Promise<void> {
  await extension?.stop();
  extension = undefined;
}
