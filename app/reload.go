package app

import (
	"fmt"
	"reflect"
	"strings"

	"go.uber.org/zap"
)

// ConfigSource loads the node's configuration again, from the same file
// and environment it started with.
type ConfigSource func() (*Config, error)

// Reload loads the configuration from the node's source, validates it and
// applies the keys that can change at runtime: limits and the business
// clients. Keys that need a restart keep their old values and are listed
// in the error-free result as ignored. An invalid configuration changes
// nothing and returns the reason.
func (n *Node) Reload() (changed, ignored []string, err error) {
	if n.source == nil {
		return nil, nil, fmt.Errorf("app: reload: the node was started without a configuration source")
	}
	next, err := n.source()
	if err != nil {
		n.log.Warn("configuration reload rejected", zap.Error(err))
		return nil, nil, err
	}
	clients, _, err := ResolveClients(next)
	if err != nil {
		n.log.Warn("configuration reload rejected", zap.Error(err))
		return nil, nil, err
	}
	n.reloadMu.Lock()
	defer n.reloadMu.Unlock()
	changed = diffKeys("limits", n.cfg.Limits, next.Limits)
	if !reflect.DeepEqual(n.clients, clients) {
		changed = append(changed, "auth.clients")
	}
	ignored = restartOnlyChanges(n.cfg, next)
	if err := n.auth.SetClients(clients); err != nil {
		return nil, nil, err
	}
	n.limits.set(next.Limits, clients)
	n.cfg.Limits = next.Limits
	n.clients = clients
	n.log.Info("configuration reloaded", zap.Strings("changed", changed),
		zap.Strings("ignored_until_restart", ignored))
	return changed, ignored, nil
}

// diffKeys lists the keys of two structs of the same type whose values
// differ, as prefix.key.
func diffKeys(prefix string, old, next any) []string {
	ov, nv := reflect.ValueOf(old), reflect.ValueOf(next)
	var out []string
	for i := range ov.NumField() {
		if !reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			name, _, _ := strings.Cut(ov.Type().Field(i).Tag.Get("yaml"), ",")
			out = append(out, fmt.Sprintf("%s.%s: %v -> %v", prefix, name,
				ov.Field(i).Interface(), nv.Field(i).Interface()))
		}
	}
	return out
}

// restartOnlyChanges lists the sections that changed but apply only after
// a restart.
func restartOnlyChanges(old, next *Config) []string {
	sections := map[string][2]any{
		"log": {old.Log, next.Log}, "http": {old.HTTP, next.HTTP},
		"storage": {old.Storage, next.Storage}, "phone": {old.Phone, next.Phone},
		"auth.jwt": {old.Auth.JWT, next.Auth.JWT}, "hub": {old.Hub, next.Hub},
		"delivery": {old.Delivery, next.Delivery}, "health": {old.Health, next.Health},
	}
	var out []string
	for name, pair := range sections {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			out = append(out, name)
		}
	}
	return out
}
