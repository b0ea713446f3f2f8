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

// OnBump hears each key a Bump advanced, with its new version, after the hub's lock is
// released (it may read the hub), and nothing once removed.
func TestOnBump(t *testing.T) {
	h := New(100)
	type heard struct {
		key     string
		version int64
	}
	var got []heard
	h.OnBump(func(key string, v int64) {
		if now, _ := h.Version(key); now != v {
			t.Errorf("%s: heard version %d, the hub says %d", key, v, now)
		}
		got = append(got, heard{key, v})
	})
	h.Bump("a", "b")
	h.Bump("a")
	want := []heard{{"a", 101}, {"b", 101}, {"a", 102}}
	if len(got) != len(want) {
		t.Fatalf("heard %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("heard %v, want %v", got, want)
		}
	}
	h.OnBump(nil)
	h.Bump("a")
	if len(got) != len(want) {
		t.Fatalf("heard %v after the hook was removed", got[len(want):])
	}
}
