// Usage: node transports.mjs HUB_URL ACCESS_TOKEN
//
// For each transport, and for WebSockets without negotiation, connects, waits for the
// ReceiveMessage the server sends on connect, acknowledges it, calls
// AcknowledgeMessage("fail-me"), which the server rejects, and stops.
import { connect, emit, nextInvocation, run, signalR } from "./common.mjs";

const [url, token] = process.argv.slice(2);

const modes = [
  { name: "WebSockets", options: { transport: signalR.HttpTransportType.WebSockets } },
  { name: "ServerSentEvents", options: { transport: signalR.HttpTransportType.ServerSentEvents } },
  { name: "LongPolling", options: { transport: signalR.HttpTransportType.LongPolling } },
  {
    name: "SkipNegotiation",
    options: { transport: signalR.HttpTransportType.WebSockets, skipNegotiation: true },
  },
];

async function exercise(mode) {
  const connection = connect(url, token, mode.options);
  const received = nextInvocation(connection, "ReceiveMessage");
  await connection.start();
  emit("started", { mode: mode.name, connectionId: connection.connectionId ?? null });

  const args = await received;
  const payload = JSON.parse(args[0]);
  emit("received", { mode: mode.name, argCount: args.length, argType: typeof args[0], payload });

  const result = await connection.invoke("AcknowledgeMessage", payload.Id);
  emit("acknowledged", { mode: mode.name, result: result === undefined ? "undefined" : result });

  try {
    await connection.invoke("AcknowledgeMessage", "fail-me");
    emit("ackError", { mode: mode.name, message: null });
  } catch (err) {
    emit("ackError", { mode: mode.name, message: err.message });
  }

  await connection.stop();
  emit("stopped", { mode: mode.name });
}

run(async () => {
  for (const mode of modes) {
    await exercise(mode);
  }
});
