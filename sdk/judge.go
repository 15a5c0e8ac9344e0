package sdk

import (
	"log/slog"
	"runtime"
	"sync"
)

// JudgeAll judges the messages of s, a subscription made with Validate,
// until s ends, and returns Next's error then. check runs on several
// messages at once, on every core: the pure work, such as checking
// signatures. take runs on one message at a time, in the order the router
// delivered them, with what check found, and gives the verdict: the work
// that must see each author's messages in order, such as refusing replays.
// Verdicts go back to the router without waiting for each other.
//
// The router sends each message as it arrives, while gossipsub still holds
// it in its queue (one message judged at a time, in order), so a plugin
// that judges this way has its verdicts ready before they are asked for.
func JudgeAll[T any](s *Subscription, check func(Message) T, take func(Message, T) Verdict) error {
	depth := 4 * runtime.GOMAXPROCS(0) // messages in check or waiting for take
	type job struct {
		m    Message
		t    T
		done chan struct{}
	}
	type judged struct {
		m Message
		v Verdict
	}
	ordered := make(chan *job, depth)
	verdicts := make(chan judged, depth)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(verdicts)
		for j := range ordered {
			<-j.done
			verdicts <- judged{j.m, take(j.m, j.t)}
		}
	}()
	for range 2 { // a verdict is one round trip to the router
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range verdicts {
				if err := s.Judge(j.m, j.v); err != nil {
					slog.Debug("verdict not given", "err", err)
				}
			}
		}()
	}
	defer wg.Wait()
	defer close(ordered)
	for {
		m, err := s.Next()
		if err != nil {
			return err
		}
		j := &job{m: m, done: make(chan struct{})}
		ordered <- j // waits while depth messages are in hand
		go func() {
			defer close(j.done)
			j.t = check(m)
		}()
	}
}
