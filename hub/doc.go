// Package hub serves the SignalR hub that mobile apps connect to with an unmodified
// official SignalR client (JavaScript, .NET, Java or Swift).
//
// The hub implements negotiate and the WebSockets, Server-Sent Events and long polling
// transports of the ASP.NET Core TransportProtocols.md specification, and the JSON hub
// protocol versions 1 and 2 of HubProtocol.md, including stateful reconnect. Clients
// listen for ReceiveMessage and ReceivePendingMessages and call AcknowledgeMessage(id).
//
// Each WebSocket connection costs one reader goroutine while idle. A writer goroutine
// runs only while frames are queued, and write buffers come from a shared pool.
package hub
