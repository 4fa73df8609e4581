// Usage: node reconnect.mjs HUB_URL ACCESS_TOKEN
//
// Connects over WebSockets with automatic reconnect and acknowledges each
// ReceiveMessage. The server closes the first connection with allowReconnect after
// the first acknowledgement; the script ends after a message on the new connection.
import { connect, emit, run, signalR } from "./common.mjs";

const [url, token] = process.argv.slice(2);

run(async () => {
  const connection = connect(
    url,
    token,
    { transport: signalR.HttpTransportType.WebSockets },
    (builder) => builder.withAutomaticReconnect([0, 50, 100, 200, 500, 1000]),
  );
  let received = 0;
  let finish;
  const finished = new Promise((resolve) => {
    finish = resolve;
  });
  connection.on("ReceiveMessage", async (text) => {
    const id = JSON.parse(text).Id;
    received++;
    emit("received", { id });
    await connection.invoke("AcknowledgeMessage", id);
    emit("acknowledged", { id });
    if (received === 2) {
      finish();
    }
  });
  connection.onreconnecting((err) => emit("reconnecting", { error: err ? err.message : null }));
  connection.onreconnected((connectionId) => emit("reconnected", { connectionId }));

  await connection.start();
  emit("started", { connectionId: connection.connectionId });
  await finished;
  await connection.stop();
  emit("stopped");
});
