package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Message states in the node's API that the loss count names.
const (
	statusDelivered = 2
	statusFailed    = 5 // dead-lettered
)

// statusNames names the message states of the node's API.
var statusNames = map[int]string{
	0: "pending", 1: "sent", statusDelivered: "delivered", 3: "read", 4: "queued", statusFailed: "failed",
}

// Lookup results that are not a message state.
const (
	lookupNotFound = "not_found"
	lookupFailed   = "lookup_failed"
)

// lookupTimeout bounds the whole lookup of undelivered messages. Messages
// not looked up by then count as lost.
const lookupTimeout = 2 * time.Minute

// maxLostSamples is how many lost ids the report lists.
const maxLostSamples = 20

// lossCount classifies the accepted messages that no user had received when
// the drain ended.
type lossCount struct {
	Undelivered   int64 `json:"undelivered"`    // when the drain ended
	DeliveredLate int64 `json:"delivered_late"` // received while they were looked up
	DeadLettered  int64 `json:"dead_lettered"`
	Lost          int64 `json:"lost"`
	// LostByStatus counts the lost messages by their state in the node's
	// API (pending, sent, delivered, read, queued), or not_found or
	// lookup_failed.
	LostByStatus map[string]int64 `json:"lost_by_status,omitempty"`
	LostSamples  []string         `json:"lost_samples,omitempty"`
}

// undeliveredSends returns the accepted sends that no user received.
func undeliveredSends(sched schedule, r *records, d *deliveries) []int64 {
	var seqs []int64
	for seq := range sched.count {
		if r.kinds[seq] == outcomeAccepted && !d.delivered(seq) {
			seqs = append(seqs, seq)
		}
	}
	return seqs
}

// countLoss looks up the undelivered sends and classifies them. A message
// that a user received during the lookup is delivered late, not lost. A
// dead-lettered message (status 5, Failed) is not lost either, because the
// node gave up on it and reports that. Every other one is lost, and so is one whose
// lookup failed.
func countLoss(ctx context.Context, lookup *messageLookup, seqs []int64, r *records, d *deliveries) lossCount {
	ids := make([]uuid.UUID, len(seqs))
	for i, seq := range seqs {
		ids[i] = r.ids[seq]
	}
	statuses := lookup.statuses(ctx, ids)
	out := lossCount{Undelivered: int64(len(seqs)), LostByStatus: map[string]int64{}}
	for i, seq := range seqs {
		switch {
		case d.delivered(seq):
			out.DeliveredLate++
		case statuses[i] == statusNames[statusFailed]:
			out.DeadLettered++
		default:
			out.Lost++
			out.LostByStatus[statuses[i]]++
			if len(out.LostSamples) < maxLostSamples {
				out.LostSamples = append(out.LostSamples, ids[i].String())
			}
		}
	}
	return out
}

// messageLookup reads messages through GET /api/v1/messages/{id}.
type messageLookup struct {
	target  *target
	client  *http.Client
	workers int
}

func newMessageLookup(t *target, workers int) *messageLookup {
	transport := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
	return &messageLookup{
		target:  t,
		client:  &http.Client{Transport: transport, Timeout: 10 * time.Second},
		workers: workers,
	}
}

// statuses looks up each id with the lookup's workers and returns its
// state's name, lookupNotFound or lookupFailed, in the order of ids.
func (m *messageLookup) statuses(ctx context.Context, ids []uuid.UUID) []string {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	defer m.client.CloseIdleConnections()
	out := make([]string, len(ids))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range m.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out[i] = m.status(ctx, ids[i])
			}
		}()
	}
	for i := range ids {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return out
}

// status returns the name of the message's state in the API, or
// lookupNotFound or lookupFailed.
func (m *messageLookup) status(ctx context.Context, id uuid.UUID) string {
	if ctx.Err() != nil {
		return lookupFailed
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.target.url("/api/v1/messages/"+id.String()), nil)
	if err != nil {
		return lookupFailed
	}
	req.Header.Set("X-Api-Key", m.target.apiKey)
	resp, err := m.client.Do(req)
	if err != nil {
		return lookupFailed
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return lookupNotFound
	}
	var msg struct {
		Status *int `json:"status"`
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil || resp.StatusCode != http.StatusOK || json.Unmarshal(body, &msg) != nil || msg.Status == nil {
		return lookupFailed
	}
	if name, ok := statusNames[*msg.Status]; ok {
		return name
	}
	return "status_" + strconv.Itoa(*msg.Status)
}

// String describes the loss in one line.
func (l lossCount) String() string {
	return fmt.Sprintf("%d undelivered after the drain: %d delivered late, %d dead-lettered, %d lost",
		l.Undelivered, l.DeliveredLate, l.DeadLettered, l.Lost)
}
