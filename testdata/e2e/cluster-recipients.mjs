// Connects mobile users to the hub with the official SignalR client,
// acknowledges every message they receive, and reports each acknowledgement
// and any message received again after its acknowledgement completed.
//
// Usage: node cluster-recipients.mjs HUB_URL USERS_FILE [MAX_SECONDS]
//
// USERS_FILE is a JSON array of {"phone", "token", "transport"}, where
// transport is WebSockets, ServerSentEvents or LongPolling. Each user keeps
// one connection with that transport only, and reconnects whenever it
// loses it. The script runs until its standard input closes, or for at most
// MAX_SECONDS (default 600), then stops every connection and exits with 0.
//
// Standard output has one JSON object per line, each with an "event":
//   connected     {user, transport, at}  a connection started or reconnected
//   disconnected  {user, error}          a connection was lost
//   received      {user, id, at}         id arrived for the first time
//   acked         {user, id, at}         AcknowledgeMessage(id) completed
//   ackFailed     {user, id, error}      AcknowledgeMessage(id) failed; the
//                                        next delivery of id is acked again
//   again         {user, id, at, ackedAt}  id arrived after its ack completed
//   done          {acked, again}         totals, as the last line
// Times are milliseconds since the Unix epoch. Client logs go to stderr.
import * as signalR from "@microsoft/signalr";
import { readFileSync } from "node:fs";

const [hubUrl, usersFile, maxSecondsArg] = process.argv.slice(2);
if (!hubUrl || !usersFile) {
  console.error("usage: node cluster-recipients.mjs HUB_URL USERS_FILE [MAX_SECONDS]");
  process.exit(2);
}
const users = JSON.parse(readFileSync(usersFile, "utf8"));
const maxSeconds = Number(maxSecondsArg ?? 600);

let stopping = false;
let ackedTotal = 0;
let againTotal = 0;

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

function errorText(err) {
  return err instanceof Error ? err.message : String(err ?? "");
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// stderrLogger sends the client's warnings and errors to stderr, so that
// stdout carries only events.
function stderrLogger(user) {
  return {
    log(level, message) {
      if (level >= signalR.LogLevel.Warning) {
        process.stderr.write(`${user}: ${message}\n`);
      }
    },
  };
}

function connectUser(user) {
  const transport = signalR.HttpTransportType[user.transport];
  if (transport === undefined) {
    throw new Error(`unknown transport ${user.transport} for user ${user.phone}`);
  }
  const received = new Set(); // every message id that arrived
  const ackedAt = new Map(); // message id -> time its ack completed
  const pending = new Set(); // ids with an ack in progress

  const connection = new signalR.HubConnectionBuilder()
    .withUrl(hubUrl, { transport, accessTokenFactory: () => user.token })
    .withAutomaticReconnect({
      // Retry every 200 ms for up to 2 minutes, then let onclose start over.
      nextRetryDelayInMilliseconds: (ctx) =>
        stopping || ctx.elapsedMilliseconds > 120000 ? null : 200,
    })
    .configureLogging(stderrLogger(user.phone))
    .build();

  const receive = (ids) => {
    const now = Date.now();
    for (const id of ids) {
      if (!received.has(id)) {
        received.add(id);
        emit({ event: "received", user: user.phone, id, at: now });
      }
      if (ackedAt.has(id)) {
        againTotal++;
        emit({ event: "again", user: user.phone, id, at: now, ackedAt: ackedAt.get(id) });
        continue;
      }
      if (pending.has(id)) {
        continue;
      }
      pending.add(id);
      connection
        .invoke("AcknowledgeMessage", id)
        .then(() => {
          ackedAt.set(id, Date.now());
          ackedTotal++;
          emit({ event: "acked", user: user.phone, id, at: ackedAt.get(id) });
        })
        .catch((err) => {
          emit({ event: "ackFailed", user: user.phone, id, error: errorText(err) });
        })
        .finally(() => pending.delete(id));
    }
  };
  connection.on("ReceiveMessage", (text) => receive([JSON.parse(text).Id]));
  connection.on("ReceivePendingMessages", (text) => receive(JSON.parse(text).map((m) => m.Id)));
  connection.onreconnecting((err) =>
    emit({ event: "disconnected", user: user.phone, error: errorText(err) }),
  );
  connection.onreconnected(() =>
    emit({ event: "connected", user: user.phone, transport: user.transport, at: Date.now() }),
  );

  // start retries every 200 ms until the connection starts or the script
  // stops, because a start fails while the node that negotiated goes away.
  const start = async () => {
    for (let attempt = 0; !stopping && attempt < 3000; attempt++) {
      try {
        await connection.start();
        emit({ event: "connected", user: user.phone, transport: user.transport, at: Date.now() });
        return;
      } catch (err) {
        if (attempt % 25 === 0) {
          process.stderr.write(`${user.phone}: start failed: ${errorText(err)}\n`);
        }
        await delay(200);
      }
    }
  };
  connection.onclose((err) => {
    if (!stopping) {
      emit({ event: "disconnected", user: user.phone, error: errorText(err) });
      start();
    }
  });
  start();
  return connection;
}

const connections = users.map(connectUser);

async function stop() {
  if (stopping) {
    return;
  }
  stopping = true;
  await Promise.allSettled(connections.map((c) => c.stop()));
  emit({ event: "done", acked: ackedTotal, again: againTotal });
  process.exit(0);
}

process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
setTimeout(stop, maxSeconds * 1000).unref();
