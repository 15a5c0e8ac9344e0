package store

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// Callers of the same key share one call; the first one giving up does not
// end it for the others, and the last one giving up does.
func TestSharedOutlivesItsFirstCaller(t *testing.T) {
	var g shared[string, int]
	var runs atomic.Int32
	release := make(chan struct{})
	ended := make(chan error, 1)
	fn := func(ctx context.Context) (int, error) {
		runs.Add(1)
		select {
		case <-release:
			return 42, nil
		case <-ctx.Done():
			ended <- ctx.Err()
			return 0, ctx.Err()
		}
	}
	first, cancelFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() { _, err := g.do(first, context.Background(), "k", fn); firstErr <- err }()
	second := make(chan int, 1)
	go func() {
		// Joins once the first has started the call.
		for runs.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		v, err := g.do(context.Background(), context.Background(), "k", fn)
		if err != nil {
			t.Error(err)
		}
		second <- v
	}()
	for runs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the second is waiting too
	cancelFirst()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("the first caller got %v, want its own cancellation", err)
	}
	close(release)
	if v := <-second; v != 42 {
		t.Fatalf("the second caller got %d, want the shared call's 42", v)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("the call ran %d times, want once", n)
	}

	// Alone, a caller that gives up ends the call.
	started := make(chan struct{})
	block := func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		ended <- ctx.Err()
		return 0, ctx.Err()
	}
	lone, cancelLone := context.WithCancel(context.Background())
	go func() { <-started; cancelLone() }()
	if _, err := g.do(lone, context.Background(), "other", block); !errors.Is(err, context.Canceled) {
		t.Fatalf("lone caller: %v", err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the call ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call went on after its last caller left")
	}
}
