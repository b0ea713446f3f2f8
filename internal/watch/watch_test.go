package watch

import (
	"context"
	"testing"
	"time"
)

func TestWaitWakesOnBump(t *testing.T) {
	h := New(100)
	v, _ := h.Version("a")
	if v != 100 {
		t.Fatalf("base version %d", v)
	}
	done := make(chan int64)
	go func() { done <- h.Wait(t.Context(), "a", v, time.Minute) }()
	h.Bump("b")
	h.Bump("a")
	select {
	case got := <-done:
		if got != 101 {
			t.Fatalf("got %d want 101", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken")
	}
}

func TestWaitReturnsAtOnceWhenBehind(t *testing.T) {
	h := New(0)
	h.Bump("k")
	if got := h.Wait(context.Background(), "k", 0, time.Hour); got != 1 {
		t.Fatalf("got %d", got)
	}
}
