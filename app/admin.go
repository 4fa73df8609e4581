package app

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

// requireAdmin answers 403 unless the caller is an admin client.
func requireAdmin(c echo.Context) error {
	if principal(c).Admin {
		return nil
	}
	return newAPIError(http.StatusForbidden, "forbidden",
		"This route is for admin clients; set admin: true on the client's auth.clients entry.")
}

// adminReload reloads the configuration like SIGHUP does. An invalid
// configuration is rejected with the reason, and the running one stays.
func (a *API) adminReload(c echo.Context) error {
	if err := requireAdmin(c); err != nil {
		return a.fail(c, err)
	}
	changed, ignored, err := a.reload()
	if err != nil {
		return a.fail(c, newAPIError(http.StatusUnprocessableEntity, "invalid_config",
			"The configuration was not reloaded, and the running one stays: "+err.Error()))
	}
	if changed == nil {
		changed = []string{}
	}
	if ignored == nil {
		ignored = []string{}
	}
	return c.JSON(http.StatusOK, map[string]any{"changed": changed, "ignoredUntilRestart": ignored})
}

// adminLimits returns the limits in force.
func (a *API) adminLimits(c echo.Context) error {
	if err := requireAdmin(c); err != nil {
		return a.fail(c, err)
	}
	l := a.limits.limits()
	return c.JSON(http.StatusOK, map[string]any{
		"rate": l.Rate, "burst": l.Burst, "maxInFlight": l.MaxInFlight,
		"queueHighWater": l.QueueHighWater, "inboxCap": l.InboxCap,
		"maxConnections": l.MaxConnections, "inFlight": a.limits.inFlight.Load(),
	})
}
