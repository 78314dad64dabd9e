// VS Code glue: starts codellama-lsp, keeps its settings in sync, and shows its
// state in the status bar. Everything decidable without VS Code lives in the
// other modules (tested under plain node).

import { type ChildProcess, spawn } from "node:child_process";
import * as os from "node:os";
import * as readline from "node:readline";
import type { Readable } from "node:stream";
import * as vscode from "vscode";
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorAction,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
  State,
} from "vscode-languageclient/node";

import { documentSelector } from "./languages";
import {
  ACCEPTED_COMMAND,
  DOCUMENT_ACTIVE_METHOD,
  documentActiveParams,
  hasPrompt,
  isStatusParams,
  isTodayStats,
  LAST_PROMPT_METHOD,
  lastPromptDocument,
  type LastPromptResult,
  STATS_METHOD,
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
import { type LogLine, lastErrorOf, ServerLogParser } from "./serverLog";
import {
  initialStatus,
  reduce,
  render,
  type StatusEvent,
  type StatusState,
} from "./status";

/** Wait after the last suggestion before asking the server for its timings. */
const LATENCY_REFRESH_MS = 400;
/** Wait after an editor switch or a cursor move before telling the server (it warms that place). */
const ACTIVE_NOTIFY_MS = 250;
/** Server stderr lines kept to say why it stopped. */
const KEPT_LINES = 40;
/** After `shutdown`/`exit`, how long the server may take before it is terminated. */
const EXIT_GRACE_MS = 3000;

/**
 * vscode-languageclient shows its own error toasts ("couldn't create connection
 * to server", "connection got closed"), forced past `revealOutputChannelOn`.
 * The extension says once, itself, why the server is down: here they are logged only.
 */
class LoggingLanguageClient extends LanguageClient {
  override error(message: string, data?: unknown, _showNotification?: boolean | "force"): void {
    super.error(message, data, false);
  }

  override warn(message: string, data?: unknown, _showNotification?: boolean): void {
    super.warn(message, data, false);
  }

  override info(message: string, data?: unknown, _showNotification?: boolean): void {
    super.info(message, data, false);
  }
}

/** One server process: its exit, its last stderr lines, and whether we asked it to stop. */
class Launch {
  child: ChildProcess | undefined;
  stopping = false;
  readonly lines: LogLine[] = [];
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exitWaiters: (() => void)[] = [];

  constructor(readonly command: string) {}

  keep(line: LogLine): void {
    this.lines.push(line);
    if (this.lines.length > KEPT_LINES) {
      this.lines.shift();
    }
  }

  exited(code: number | null, signal: NodeJS.Signals | null): void {
    this.exitInfo = { code, signal };
    for (const wake of this.exitWaiters.splice(0)) {
      wake();
    }
  }

  /** Resolves once the process has exited, or after `ms`. */
  async exit(ms: number): Promise<void> {
    if (this.exitInfo || !this.child) {
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.exitWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Why the server is not running, in the words a user can act on. */
  reason(): string {
    const info = this.exitInfo;
    let why: string;
    if (!info) {
      why = "the connection to the server closed";
    } else if (info.signal) {
      why = `the server was killed (${info.signal})`;
    } else {
      why = `the server exited with code ${info.code ?? "?"}`;
    }
    const last = lastErrorOf(this.lines);
    return last ? `${why}: ${last}` : why;
  }
}

/** Why a spawn failed, said plainly (Node gives `spawn X ENOENT`). */
function spawnFailure(command: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT") {
    return `could not start ${command}: not found (install codellama-lsp, or set codellama.server.path or codellama.server.pythonPath)`;
  }
  if (code === "EACCES") {
    return `could not start ${command}: not executable`;
  }
  return `could not start ${command}: ${error instanceof Error ? error.message : String(error)}`;
}

/**
 * The one message saying the server is down, withdrawn when it is back. A
 * notification with progress is the only kind an extension can close itself;
 * its text links to what fixes the problem.
 */
class DownNotice implements vscode.Disposable {
  private current: { close(): void; say(message: string): void } | undefined;

  show(message: string): void {
    if (this.current) {
      this.current.say(message);
      return;
    }
    let close = (): void => undefined;
    let say = (_message: string): void => undefined;
    const mine = { close: () => close(), say: (m: string) => say(m) };
    this.current = mine;
    void vscode.window
      .withProgress(
        { location: vscode.ProgressLocation.Notification, title: "Code Llama", cancellable: true },
        (progress, token) =>
          new Promise<void>((resolve) => {
            close = resolve;
            say = (m: string) => progress.report({ message: m });
            say(message);
            token.onCancellationRequested(() => resolve());
          }),
      )
      .then(() => {
        if (this.current === mine) {
          this.current = undefined;
        }
      });
  }

  hide(): void {
    const current = this.current;
    this.current = undefined;
    current?.close();
  }

  dispose(): void {
    this.hide();
  }
}

const PROMPT_SCHEME = "codellama-prompt";

/** The last prompt as a virtual document: shown again, it is updated in place. */
class PromptDocument implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private text = "";
  readonly uri = vscode.Uri.parse(`${PROMPT_SCHEME}:/Code Llama - last prompt.txt`);

  provideTextDocumentContent(): string {
    return this.text;
  }

  show(text: string): vscode.Uri {
    this.text = text;
    this.changed.fire(this.uri);
    return this.uri;
  }

  dispose(): void {
    this.changed.dispose();
  }
}

const FIX_LINKS =
  "[Restart](command:codellama.restartServer) · [Show Log](command:codellama.showLog) · " +
  "[Settings](command:workbench.action.openSettings?%5B%22codellama.server%22%5D)";

class Extension implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private launch: Launch | undefined;
  private readonly notice = new DownNotice();
  private readonly prompts = new PromptDocument();
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

    this.status = initialStatus(this.config().get<boolean>("enable", true), this.backendType());
    this.keys = declaredKeys(context.extension.packageJSON as Parameters<typeof declaredKeys>[0]);
    this.disposables.push(
      this.output,
      this.item,
      this.notice,
      this.prompts,
      vscode.workspace.registerTextDocumentContentProvider(PROMPT_SCHEME, this.prompts),
    );
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
    this.item.command = view.command;
    this.item.backgroundColor =
      view.severity === "normal"
        ? undefined
        : new vscode.ThemeColor(
            view.severity === "error" ? "statusBarItem.errorBackground" : "statusBarItem.warningBackground",
          );
  }

  /** The server is down: the status bar says why, and one message offers the fixes. */
  private serverDown(reason: string): void {
    this.update({ kind: "stopped", reason });
    this.notice.show(`${reason}. ${FIX_LINKS}`);
  }

  /** Spawn the server ourselves: its exit status and stderr say why it stopped. */
  private serverOptions(launch: Launch, args: readonly string[]): ServerOptions {
    const folder = vscode.workspace.workspaceFolders?.find((f) => f.uri.scheme === "file");
    return () =>
      new Promise<ChildProcess>((resolve, reject) => {
        const child = spawn(launch.command, [...args], {
          cwd: folder?.uri.fsPath,
          stdio: "pipe",
          shell: false,
        });
        child.once("error", (error) => reject(new Error(spawnFailure(launch.command, error))));
        child.once("spawn", () => {
          launch.child = child;
          child.once("exit", (code, signal) => {
            launch.exited(code, signal);
            if (code === 0) {
              this.output.info("Server process exited successfully");
            } else if (launch.stopping) {
              this.output.info(`Server process ended (${signal ?? `code ${code}`}) after a stop`);
            } else {
              this.output.error(`Server process ended: ${launch.reason()}`);
            }
          });
          resolve(child);
        });
      });
  }

  /** Each stderr line at the server's own level, one timestamp (the channel's). */
  private linesToChannel(launch: Launch): (input: Readable) => void {
    return (input) => {
      const parser = new ServerLogParser();
      readline
        .createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 })
        .on("line", (text: string) => {
          const line = parser.line(text);
          launch.keep(line);
          this.output[line.level](line.message);
        });
    };
  }

  async start(): Promise<void> {
    const config = this.config();
    const { command, args } = serverCommand(
      { path: config.get<string>("server.path"), pythonPath: config.get<string>("server.pythonPath") },
      os.homedir(),
    );
    const launch = new Launch(command);
    this.launch = launch;
    this.output.info(`Starting ${command} ${args.join(" ")}`);
    const clientOptions: LanguageClientOptions = {
      documentSelector: documentSelector(),
      initializationOptions: this.serverSettings(),
      outputChannel: this.output,
      stdioOptions: {
        // stdout is the protocol here; the client pipes it as text only for socket transports.
        stdout: this.linesToChannel(launch),
        stderr: this.linesToChannel(launch),
      },
      // A crash is shown (status bar, one message) and restarted on request, not behind the user's back.
      errorHandler: {
        error: () => ({ action: ErrorAction.Shutdown, handled: true }),
        closed: () => ({ action: CloseAction.DoNotRestart, handled: true }),
      },
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
        // VS Code runs an inline item's command after accepting it; the client sends it to
        // the server (workspace/executeCommand), which counts it: refresh today's rate.
        executeCommand: async (command, args, next) => {
          const result = await next(command, args);
          if (command === ACCEPTED_COMMAND) {
            void this.refreshToday();
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
    const client = new LoggingLanguageClient(SECTION, "Code Llama", this.serverOptions(launch, args), clientOptions);
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
        this.notice.hide();
        this.update({ kind: "running" });
      } else if (!launch.stopping) {
        // Stopped without being asked: the process died or closed its pipes.
        void launch.exit(1000).then(() => {
          if (this.client === client && !launch.stopping) {
            this.output.error(`The server stopped: ${launch.reason()}`);
            this.serverDown(launch.reason());
          }
        });
      }
    });
    this.update({ kind: "starting" });
    try {
      await client.start();
      void this.refreshToday();
    } catch (error) {
      if (this.client !== client || launch.stopping) {
        return; // replaced or stopped while starting
      }
      const message = error instanceof Error ? error.message : String(error);
      const reason = launch.child ? (await launch.exit(1000), launch.reason()) : message;
      this.output.error(`The server did not start: ${reason}`);
      this.serverDown(reason);
    }
  }

  /** Restart, show the log or open the settings: what a click on a stopped server offers. */
  async serverActions(): Promise<void> {
    const actions: (vscode.QuickPickItem & { run(): unknown })[] = [
      { label: "$(debug-restart) Restart Server", run: () => this.restart() },
      { label: "$(output) Show Log", run: () => this.output.show() },
      {
        label: "$(settings-gear) Open Settings",
        description: "codellama.server",
        run: () => vscode.commands.executeCommand("workbench.action.openSettings", "codellama.server"),
      },
    ];
    const choice = await vscode.window.showQuickPick(actions, {
      title: `Code Llama: ${this.status.modelMessage}`,
      placeHolder: "The server is not running",
    });
    await choice?.run();
  }

  async stop(): Promise<void> {
    const client = this.client;
    const launch = this.launch;
    this.client = undefined;
    this.launch = undefined;
    if (launch) {
      launch.stopping = true;
    }
    if (client) {
      try {
        if (client.needsStop()) {
          await client.stop(5000);
        }
      } catch (error) {
        this.output.error(`Stopping the server failed: ${String(error)}`);
      }
      await client.dispose().catch(() => undefined);
    }
    // shutdown/exit ends a healthy server; one that does not exit is terminated.
    if (launch?.child) {
      await launch.exit(EXIT_GRACE_MS);
      if (launch.child.exitCode === null && launch.child.signalCode === null) {
        launch.child.kill("SIGTERM");
      }
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
      void this.refreshToday();
      void this.lastPrompt().then((result) => {
        if (hasPrompt(result)) {
          this.update({ kind: "latency", latency: { ttftMs: result.ttftMs, totalMs: result.totalMs } });
        }
      });
    }, LATENCY_REFRESH_MS);
  }

  /** Today's acceptance rate for the tooltip (`codellama/stats`); an older server has none. */
  private async refreshToday(): Promise<void> {
    const client = this.client;
    if (!client || !client.isRunning()) {
      return;
    }
    try {
      const today: unknown = await client.sendRequest(STATS_METHOD, {});
      if (this.client === client && isTodayStats(today)) {
        this.update({ kind: "today", today });
      }
    } catch {
      // Not answered (an older server, or stopping): the tooltip goes without it.
    }
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
      void vscode.window.showWarningMessage(`Code Llama: the server is not running (${this.status.modelMessage}).`);
      return;
    }
    const result = await this.lastPrompt();
    // Read-only, and closed without a "save changes?" question; plain text, so
    // it gets no suggestions itself.
    const uri = this.prompts.show(lastPromptDocument(result));
    const document = await vscode.workspace.openTextDocument(uri);
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
      "codellama.serverActions": () => this.serverActions(),
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
