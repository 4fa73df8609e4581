// Usage: node stateful.mjs HUB_URL ACCESS_TOKEN COUNT
//
// Connects over WebSockets with stateful reconnect and acknowledges every
// ReceiveMessage. The server drops the socket while messages are in flight. The script
// ends once COUNT distinct messages arrived and were acknowledged, and reports any
// message that arrived twice.
import { connect, emit, run, signalR } from "./common.mjs";

const [url, token, countText] = process.argv.slice(2);
const count = Number(countText);

run(async () => {
  const connection = connect(
    url,
    token,
    { transport: signalR.HttpTransportType.WebSockets },
    (builder) => builder.withStatefulReconnect(),
  );
  const seen = new Map();
  let acknowledged = 0;
  let finish;
  const finished = new Promise((resolve) => {
    finish = resolve;
  });
  connection.on("ReceiveMessage", async (text) => {
    const id = JSON.parse(text).Id;
    seen.set(id, (seen.get(id) ?? 0) + 1);
    emit("received", { id });
    await connection.invoke("AcknowledgeMessage", id);
    acknowledged++;
    if (acknowledged === count) {
      finish();
    }
  });
  connection.onreconnecting(() => emit("reconnecting"));
  connection.onclose((err) => emit("closed", { error: err ? err.message : null }));

  await connection.start();
  emit("started", { connectionId: connection.connectionId });
  await finished;
  const duplicates = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
  emit("done", { distinct: seen.size, duplicates });
  await connection.stop();
});
