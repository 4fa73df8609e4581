// Connects one or more mobile users to the relay's hub with the official
// SignalR client and reports, one JSON line each on standard output, every
// message they receive and every acknowledgement they complete.
//
// Usage: node delivery-client.mjs CONFIG
//
// CONFIG is JSON text with these fields:
//   url          The hub URL, such as http://127.0.0.1:8080/online-mobile-user.
//   clients      [{name, token, autoAck}], one connection per entry,
//                authenticated with the mobile user's JWT. A connection with
//                autoAck acknowledges every message as soon as it arrives.
//   transport    WebSockets, ServerSentEvents or LongPolling.
//   reconnectMs  How long to reconnect automatically after a connection is
//                lost. 0 turns automatic reconnection off.
//   timeoutMs    The script fails if it is still running after this long.
//   untilAcked   If set, the script exits once it has acknowledged this many
//                distinct messages, and it does not read standard input.
//
// Unless untilAcked is set, commands arrive as JSON lines on standard input:
//   {"cmd": "ack", "client": NAME, "id": ID}  acknowledge message ID
//   {"cmd": "exit"}                           stop every connection and exit
// The end of standard input is the same as exit.
//
// Output lines have a "type" and, where it applies, the "client" name:
//   connected    The connection started, with "connectionId" and "transport".
//   ready        Every connection started.
//   receive      ReceiveMessage or ReceivePendingMessages was invoked, with
//                "method", "args" (the arguments as received) and "ids".
//   invalid      An invocation's arguments were not as expected, see "error".
//   acked        AcknowledgeMessage("id") completed.
//   ackFailed    AcknowledgeMessage("id") failed with "error".
//   redelivered  Message "id" arrived again after its acknowledgement
//                completed on this connection at "ackedAt".
//   reconnecting, reconnected, closed   The connection's state changed.
//   stopped      Every connection was stopped, and the script exits 0.

import { createInterface } from "node:readline";

import {
  buildConnection,
  emit,
  errorText,
  exit,
  exitAfter,
  fail,
  handleError,
  now,
  transportName,
} from "./lib.mjs";

let config;
// users maps a client name to its connection and the completion time of
// each of its acknowledgements, by message id.
const users = new Map();
let stopping = false;
// ackedIds contains the ids that any connection acknowledged, for
// untilAcked.
const ackedIds = new Set();

function parseConfig(text) {
  if (!text) {
    fail("missing CONFIG: pass the configuration as JSON text in the first argument");
  }
  let c;
  try {
    c = JSON.parse(text);
  } catch (err) {
    fail(`invalid CONFIG JSON: ${errorText(err)}`);
  }
  if (typeof c.url !== "string" || !Array.isArray(c.clients) || c.clients.length === 0) {
    fail("invalid CONFIG: expected a url and at least one client");
  }
  return {
    url: c.url,
    clients: c.clients,
    transport: c.transport || "WebSockets",
    reconnectMs: Number(c.reconnectMs) || 0,
    timeoutMs: Number(c.timeoutMs) || 60000,
    untilAcked: Number(c.untilAcked) || 0,
  };
}

// messageIds returns the ids in the single string argument of a receive
// method: JSON text of one message object or, for ReceivePendingMessages,
// of an array of them.
function messageIds(method, args) {
  if (args.length !== 1 || typeof args[0] !== "string") {
    throw new Error(`invalid arguments of ${method}: expected one string, got ${JSON.stringify(args)}`);
  }
  const payload = JSON.parse(args[0]);
  const list = method === "ReceivePendingMessages" ? payload : [payload];
  if (!Array.isArray(list)) {
    throw new Error(`invalid argument of ${method}: expected JSON text of an array, got ${args[0]}`);
  }
  return list.map((m) => {
    if (typeof m?.Id !== "string") {
      throw new Error(`invalid message in ${method}: missing string Id in ${JSON.stringify(m)}`);
    }
    return m.Id;
  });
}

function onReceive(user, method, args) {
  let ids;
  try {
    ids = messageIds(method, args);
  } catch (err) {
    emit({ type: "invalid", client: user.name, method, error: errorText(err) });
    return;
  }
  emit({ type: "receive", client: user.name, method, args, ids });
  for (const id of ids) {
    const ackedAt = user.ackedAt.get(id);
    if (ackedAt !== undefined) {
      emit({ type: "redelivered", client: user.name, id, ackedAt });
    }
    if (user.autoAck) {
      acknowledge(user, id);
    }
  }
}

async function acknowledge(user, id) {
  try {
    await user.connection.invoke("AcknowledgeMessage", id);
  } catch (err) {
    emit({ type: "ackFailed", client: user.name, id, error: errorText(err) });
    return;
  }
  if (!user.ackedAt.has(id)) {
    user.ackedAt.set(id, now());
  }
  emit({ type: "acked", client: user.name, id });
  ackedIds.add(id);
  if (config.untilAcked > 0 && ackedIds.size >= config.untilAcked) {
    stopAll();
  }
}

function connect({ name, token, autoAck }) {
  const connection = buildConnection({
    url: config.url,
    token,
    transport: config.transport,
    reconnectMs: config.reconnectMs,
  });
  const user = { name, connection, autoAck: Boolean(autoAck), ackedAt: new Map() };
  for (const method of ["ReceiveMessage", "ReceivePendingMessages"]) {
    connection.on(method, (...args) => onReceive(user, method, args));
  }
  connection.onreconnecting((err) => {
    emit({ type: "reconnecting", client: name, error: errorText(err) });
  });
  connection.onreconnected((connectionId) => {
    emit({ type: "reconnected", client: name, connectionId });
  });
  connection.onclose((err) => {
    if (!stopping) {
      emit({ type: "closed", client: name, error: errorText(err) });
    }
  });
  users.set(name, user);
  return user;
}

async function start(user) {
  try {
    await user.connection.start();
  } catch (err) {
    fail(`client ${user.name}: connecting to ${config.url} failed: ${errorText(err)}`);
  }
  emit({
    type: "connected",
    client: user.name,
    connectionId: user.connection.connectionId,
    transport: transportName(user.connection),
  });
}

async function stopAll() {
  if (stopping) {
    return;
  }
  stopping = true;
  await Promise.allSettled([...users.values()].map((u) => u.connection.stop()));
  emit({ type: "stopped" });
  exit(0);
}

function handleCommand(line) {
  if (line.trim() === "") {
    return;
  }
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    fail(`invalid command ${JSON.stringify(line)}: ${errorText(err)}`);
  }
  switch (cmd.cmd) {
    case "ack": {
      const user = users.get(cmd.client);
      if (!user) {
        fail(`ack: unknown client ${JSON.stringify(cmd.client)}`);
      }
      acknowledge(user, cmd.id);
      break;
    }
    case "exit":
      stopAll();
      break;
    default:
      fail(`unknown command ${JSON.stringify(cmd.cmd)}: expected ack or exit`);
  }
}

async function main() {
  config = parseConfig(process.argv[2]);
  exitAfter(config.timeoutMs, "delivery-client.mjs");
  const started = config.clients.map(connect);
  await Promise.all(started.map(start));
  emit({ type: "ready" });

  if (config.untilAcked === 0) {
    const input = createInterface({ input: process.stdin });
    input.on("line", handleCommand);
    input.on("close", stopAll);
  }
}

main().catch(handleError);
