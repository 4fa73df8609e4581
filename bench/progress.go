package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressInterval is how often the progress bar is redrawn.
const progressInterval = 250 * time.Millisecond

// progress draws a bar of the sends done, with the accepted rate of the
// last interval and the error count, while the load runs.
type progress struct {
	bar  *progressbar.ProgressBar
	live *liveCounters
	out  io.Writer
	stop chan struct{}
	wg   sync.WaitGroup
}

// startProgress starts drawing on w, unless w is nil.
func startProgress(w io.Writer, name string, total int64, live *liveCounters) *progress {
	p := &progress{live: live, out: w, stop: make(chan struct{})}
	if w == nil {
		return p
	}
	p.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(name),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionThrottle(progressInterval),
	)
	p.wg.Add(1)
	go p.draw(name)
	return p
}

func (p *progress) draw(name string) {
	defer p.wg.Done()
	ticker := time.NewTicker(progressInterval)
	defer ticker.Stop()
	last, lastAt := int64(0), time.Now()
	for {
		select {
		case <-p.stop:
			return
		case now := <-ticker.C:
			accepted := p.live.accepted.Load()
			rate := float64(accepted-last) / now.Sub(lastAt).Seconds()
			last, lastAt = accepted, now
			p.bar.Describe(fmt.Sprintf("%s %7.0f accepted/s, %d refused, %d errors",
				name, rate, p.live.refused.Load(), p.live.errors.Load()))
			_ = p.bar.Set64(p.live.done.Load())
		}
	}
}

// finish stops drawing and leaves the bar at the sends done, which is
// short of the total when sends were left unsent.
func (p *progress) finish() {
	close(p.stop)
	p.wg.Wait()
	if p.bar != nil {
		_ = p.bar.Set64(p.live.done.Load())
		_ = p.bar.Exit()
		fmt.Fprintln(p.out)
	}
}
