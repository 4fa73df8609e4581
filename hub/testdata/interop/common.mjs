// Helpers shared by the interop scripts. Each script prints one JSON object per line
// on stdout for the Go test to read, and client warnings and errors on stderr.
import signalR from "@microsoft/signalr";

export { signalR };

// emit prints one event line.
export function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");
}

// stderrLogger passes client warnings and errors to stderr.
export const stderrLogger = {
  log(level, message) {
    if (level >= signalR.LogLevel.Warning) {
      process.stderr.write(`[signalr level ${level}] ${message}\n`);
    }
  },
};

// connect builds a hub connection to url. token is sent through accessTokenFactory when
// set; options are merged into the withUrl options, and configure may add builder steps.
export function connect(url, token, options = {}, configure = (builder) => builder) {
  const urlOptions = { ...options };
  if (token) {
    urlOptions.accessTokenFactory = () => token;
  }
  const builder = new signalR.HubConnectionBuilder()
    .withUrl(url, urlOptions)
    .configureLogging(stderrLogger);
  return configure(builder).build();
}

// nextInvocation resolves with the arguments of the next call of method.
export function nextInvocation(connection, method) {
  return new Promise((resolve) => {
    const handler = (...args) => {
      connection.off(method, handler);
      resolve(args);
    };
    connection.on(method, handler);
  });
}

// run runs main and exits with 0 when it resolves, or prints a fatal event and exits
// with 1 when it rejects or does not finish within deadlineMs.
export function run(main, deadlineMs = 30000) {
  const timer = setTimeout(() => {
    emit("fatal", { message: `not finished within ${deadlineMs} ms` });
    process.exit(1);
  }, deadlineMs);
  main().then(
    () => {
      clearTimeout(timer);
      process.exit(0);
    },
    (err) => {
      emit("fatal", { message: String(err && err.stack ? err.stack : err) });
      process.exit(1);
    },
  );
}
