package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMobileUsersReceiveEveryMessage(t *testing.T) {
	f := startFakeRelay(t, &fakeRelay{deliver: true, undeliveredStatus: 1})

	code, rep := runAgainst(t, f, "--offline", "0.25", "--drain", "10s")

	require.Equal(t, exitOK, code)
	require.Equal(t, float64(100), rep["accepted"])
	require.Equal(t, float64(100), rep["delivered"])
	require.Equal(t, float64(0), rep["lost"])
	require.Equal(t, float64(0), rep["duplicates"])
	require.Greater(t, rep["delivered_offline"], float64(0), "offline users fetch their backlog")
	users := rep["users"].(map[string]any)
	require.Equal(t, float64(20), users["connected"])
	require.Equal(t, float64(5), users["offline"])
	require.Equal(t, float64(0), users["misrouted"])
	require.Equal(t, float64(0), users["ack_errors"])
	e2e := rep["e2e_ms"].(map[string]any)
	require.Equal(t, float64(100)-rep["delivered_offline"].(float64), e2e["count"],
		"end-to-end latency covers the messages to online users")
}

func TestMobileDuplicatesAfterAckAreCounted(t *testing.T) {
	f := startFakeRelay(t, &fakeRelay{deliver: true, redeliverAcked: true, undeliveredStatus: 1})

	code, rep := runAgainst(t, f, "--offline", "0", "--drain", "10s")

	require.Equal(t, exitOK, code)
	require.Equal(t, float64(100), rep["delivered"])
	require.Positive(t, f.redeliveredCount())
	// A redelivery still on its way when the run ends is not seen, so the
	// bench may count fewer than the fake sent, never more.
	require.Positive(t, rep["duplicates"])
	require.LessOrEqual(t, rep["duplicates"], float64(f.redeliveredCount()))
}

func TestMobileHubMissing(t *testing.T) {
	// A node without a hub answers 404 to negotiate: the users count as
	// failed, nothing is delivered, and every accepted message is lost.
	f := startFakeRelay(t, &fakeRelay{undeliveredStatus: 4})

	code, rep := runAgainst(t, f, "--hub-path", "/no-hub", "--drain", "10s")

	require.Equal(t, exitLost, code)
	users := rep["users"].(map[string]any)
	require.Equal(t, float64(0), users["connected"])
	require.Equal(t, float64(20), users["connect_failed"])
	require.Contains(t, users["first_error"], "404")
	require.Less(t, rep["drain_seconds"], float64(1), "with no user connected the drain is skipped")
	require.Equal(t, float64(100), rep["lost"])
}

func TestDecodeArgumentAcceptsStringOrJSON(t *testing.T) {
	want := mobileMessage{ID: "a1", MessageContent: "hello"}
	var fromString, fromObject mobileMessage

	require.NoError(t, decodeArgument(json.RawMessage(`"{\"Id\":\"a1\",\"MessageContent\":\"hello\"}"`), &fromString))
	require.NoError(t, decodeArgument(json.RawMessage(`{"Id":"a1","MessageContent":"hello"}`), &fromObject))
	require.Equal(t, want, fromString)
	require.Equal(t, want, fromObject)
	require.Error(t, decodeArgument(json.RawMessage(`"not json"`), &fromString))
}

func TestDeliveriesCountDuplicatesOnlyAfterAck(t *testing.T) {
	plan := newTestPlan(t, 2, 2)
	d := newDeliveries(plan)
	m := mobileMessage{ID: "x", MessageContent: string(plan.appendContent(nil, 0))}
	user := int(plan.recipient[0])
	now := time.Now()

	_, ok := d.receive(user, m, now)
	require.True(t, ok)
	_, ok = d.receive(user, m, now) // again before the ack completed
	require.True(t, ok)
	require.Equal(t, int64(0), d.duplicates.Load())
	d.ackDone(0)
	_, ok = d.receive(user, m, now)
	require.True(t, ok)

	require.Equal(t, int64(1), d.duplicates.Load())
	require.Equal(t, int64(1), d.distinct.Load())
	require.Equal(t, int32(3), d.received[0].Load())
}

func TestDeliveriesCountForeignAndMisrouted(t *testing.T) {
	plan := newTestPlan(t, 1, 2)
	d := newDeliveries(plan)
	other := 1 - int(plan.recipient[0])

	_, ok := d.receive(other, mobileMessage{MessageContent: "from another sender"}, time.Now())
	require.False(t, ok)
	_, ok = d.receive(other, mobileMessage{MessageContent: string(plan.appendContent(nil, 0))}, time.Now())
	require.True(t, ok)

	require.Equal(t, int64(1), d.foreign.Load())
	require.Equal(t, int64(1), d.misrouted.Load())
}

func TestMessagePlanPhonesAndOfflineShare(t *testing.T) {
	p, err := newMessagePlan(1000, 40, 0.25, 7)
	require.NoError(t, err)

	offline := 0
	for i, phone := range p.phones {
		require.Regexp(t, nodePhonePattern, phone)
		if p.offline[i] {
			offline++
		}
	}
	require.Equal(t, 10, offline)
	for seq := range int64(1000) {
		require.Less(t, int(p.recipient[seq]), 40)
	}
	_, ok := p.sendOf(string(p.appendContent(nil, 1000)))
	require.False(t, ok, "a sequence number past the plan is foreign")
}
