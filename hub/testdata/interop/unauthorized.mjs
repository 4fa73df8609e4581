// Usage: node unauthorized.mjs HUB_URL
//
// Starts connections without an access token, with negotiation and with WebSockets
// alone, and reports the errors.
import { connect, emit, run, signalR } from "./common.mjs";

const [url] = process.argv.slice(2);

async function attempt(name, options) {
  const connection = connect(url, "", options);
  try {
    await connection.start();
    emit("unexpectedStart", { mode: name });
    await connection.stop();
  } catch (err) {
    emit("rejected", { mode: name, message: err.message });
  }
}

run(async () => {
  await attempt("negotiate", {});
  await attempt("SkipNegotiation", {
    transport: signalR.HttpTransportType.WebSockets,
    skipNegotiation: true,
  });
});
