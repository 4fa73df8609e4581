package app

import (
	"go.uber.org/zap"

	"github.com/esh3artech/esh3artech/hub"
	"github.com/esh3artech/esh3artech/router"
)

func routerConfig(c *Config, log *zap.Logger) router.Config {
	d := c.Delivery
	return router.Config{
		BatchSize: d.BatchSize, BatchWait: d.BatchWait, PageSize: d.PageSize,
		MaxAttempts: d.MaxAttempts, RetryBase: d.RetryBase, RetryMax: d.RetryMax,
		TTL: d.TTL, AckBatch: d.AckBatch, Logger: log.Named("router"),
	}
}

func hubConfig(c *Config, log *zap.Logger, auth *Authenticator, events hub.Events) hub.Config {
	h := c.Hub
	return hub.Config{
		Path:                  h.Path,
		HandshakeTimeout:      h.HandshakeTimeout,
		KeepAliveInterval:     h.KeepAliveInterval,
		ClientTimeout:         h.ClientTimeout,
		MaxMessageSize:        h.MaxMessageBytes,
		NegotiateTimeout:      h.NegotiateTimeout,
		LongPollTimeout:       h.LongPollTimeout,
		SendQueueSize:         h.SendQueue,
		ReconnectBufferSize:   h.ReconnectBufferBytes,
		ReconnectWindow:       h.ReconnectWindow,
		AllowedOrigins:        h.AllowedOrigins,
		MaxConnections:        c.Limits.ConnectionCap,
		MaxConnectionsPerUser: c.Limits.MaxConnectionsPerUser,
		Auth:                  auth.Mobile,
		Events:                events,
		Logger:                log.Named("hub"),
	}
}
