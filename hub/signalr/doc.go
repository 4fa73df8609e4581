// Package signalr implements the wire format of the ASP.NET Core SignalR JSON hub
// protocol and a lean WebSocket client for it.
//
// The wire format covers the handshake, the record-separator (0x1E) framing and the
// hub messages of HubProtocol.md, and the negotiate payload of TransportProtocols.md.
// Both specifications live in the dotnet/aspnetcore repository under
// src/SignalR/docs/specs. The package does no HTTP serving: the hub package builds the
// server on top of it.
//
// The client (Dial) negotiates, connects over WebSockets, performs the handshake and then
// runs one reader goroutine per connection. Handlers registered for server invocations
// run on that goroutine, so they must return quickly.
package signalr
