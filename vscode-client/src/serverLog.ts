// The server's stderr, line by line, at the level the server logged it. The
// server writes `2026-12-01 21:42:50,244 INFO codellama_lsp.server.model: ...`
// (server/logs.py FORMAT); a LogOutputChannel adds its own timestamp and level,
// so the level becomes the channel's and the server's timestamp is dropped.
// Kept free of `vscode` so tests can use it.

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";

export interface LogLine {
  readonly level: LogLevel;
  readonly message: string;
}

/** Python logging level names (and the `logging.Formatter` default date) to channel levels. */
const LEVELS: Record<string, LogLevel> = {
  DEBUG: "debug",
  INFO: "info",
  WARNING: "warn",
  WARN: "warn",
  ERROR: "error",
  CRITICAL: "error",
  FATAL: "error",
};

const RECORD = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:[,.]\d+)? ([A-Z]+) (.*)$/;

/**
 * Follows the records of one stderr stream: a record's continuation lines (a
 * traceback, a multi-line message) keep its level; output that is not a log
 * record (an uncaught traceback before logging is set up, a native library's
 * print) is an error when it is a traceback and information otherwise.
 */
export class ServerLogParser {
  private current: LogLevel = "info";

  line(text: string): LogLine {
    const match = RECORD.exec(text);
    const level = match ? LEVELS[match[1] ?? ""] : undefined;
    if (match && level) {
      this.current = level;
      return { level, message: match[2] ?? "" };
    }
    if (text.startsWith("Traceback (most recent call last)")) {
      this.current = "error";
    }
    return { level: this.current, message: text };
  }
}

/** The last error worth quoting when the server stops: the line that says why, not the stack. */
export function lastErrorOf(lines: readonly LogLine[]): string | undefined {
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i];
    if (line && line.level === "error" && line.message.trim() && !/^\s/.test(line.message)) {
      return line.message.trim();
    }
  }
  return undefined;
}
