// Helpers for the scripts that drive a relay with the official SignalR
// client (@microsoft/signalr). Scripts write one JSON object per line to
// standard output for the Go tests to parse, and diagnostics to standard
// error.

import {
  HttpTransportType,
  HubConnectionBuilder,
  LogLevel,
} from "@microsoft/signalr";

// ScriptFailure is thrown by fail to end the caller's work while the
// process flushes its output and exits.
class ScriptFailure extends Error {}

let exiting = false;

// exit ends the process with code once standard output and standard error
// have flushed. Writes to pipes are asynchronous on POSIX (Node.js
// documentation, "A note on process I/O"), and process.exit alone drops
// whatever is still queued. A pipe that is never read delays the exit by
// at most 5 seconds.
export function exit(code) {
  if (exiting) {
    return;
  }
  exiting = true;
  process.exitCode = code;
  let open = 2;
  const flushed = () => {
    open -= 1;
    if (open === 0) {
      process.exit(code);
    }
  };
  process.stdout.write("", flushed);
  process.stderr.write("", flushed);
  setTimeout(() => process.exit(code), 5000).unref();
}

// fail writes message to standard error, exits with status 1 and throws a
// ScriptFailure, so that the caller goes no further.
export function fail(message) {
  process.stderr.write(`${message}\n`);
  exit(1);
  throw new ScriptFailure(message);
}

// handleError ends the script after an error that nothing caught. A
// ScriptFailure already started the exit.
export function handleError(err) {
  if (err instanceof ScriptFailure) {
    return;
  }
  process.stderr.write(`unexpected error: ${err?.stack ?? err}\n`);
  exit(1);
}

process.on("uncaughtException", handleError);
process.on("unhandledRejection", handleError);

// now returns the wall-clock time in milliseconds with sub-millisecond
// precision, so events of one script order by it.
export function now() {
  return performance.timeOrigin + performance.now();
}

// emit writes event as one JSON line with its time "t".
export function emit(event) {
  process.stdout.write(JSON.stringify({ ...event, t: now() }) + "\n");
}

// exitAfter fails the script once ms milliseconds have passed, so that a
// script that hangs still exits.
export function exitAfter(ms, scriptName) {
  const timer = setTimeout(() => fail(`${scriptName} timed out after ${ms} ms`), ms);
  timer.unref();
}

// stderrLogger passes the client's warnings and errors to standard error.
// The client's default ConsoleLogger (in @microsoft/signalr 10.0.11) writes
// information lines with console.info, which goes to standard output.
const stderrLogger = {
  log(level, message) {
    if (level >= LogLevel.Warning) {
      process.stderr.write(`signalr ${LogLevel[level]}: ${message}\n`);
    }
  },
};

// transportType returns the HttpTransportType of a name such as
// "WebSockets", "ServerSentEvents" or "LongPolling".
export function transportType(name) {
  const t = HttpTransportType[name];
  if (typeof t !== "number") {
    fail(`unknown transport ${JSON.stringify(name)}: expected WebSockets, ServerSentEvents or LongPolling`);
  }
  return t;
}

// buildConnection returns a hub connection to url that authenticates with
// token over the named transport only. With reconnectMs > 0 the client
// reconnects every 200 ms until reconnectMs have passed since the
// connection was lost.
export function buildConnection({ url, token, transport, reconnectMs }) {
  let builder = new HubConnectionBuilder()
    .withUrl(url, {
      accessTokenFactory: () => token,
      transport: transportType(transport),
    })
    .configureLogging(stderrLogger);
  if (reconnectMs > 0) {
    builder = builder.withAutomaticReconnect({
      nextRetryDelayInMilliseconds: (ctx) =>
        ctx.elapsedMilliseconds < reconnectMs ? 200 : null,
    });
  }
  return builder.build();
}

// transportName returns the class name of the transport a started
// connection uses, such as "WebSocketTransport". It reads a field that is
// not part of the client's typed API, so it may return "unknown".
export function transportName(connection) {
  return connection.connection?.transport?.constructor?.name ?? "unknown";
}

// errorText returns the message of err, or "" for none.
export function errorText(err) {
  if (!err) {
    return "";
  }
  return err.message ?? String(err);
}
