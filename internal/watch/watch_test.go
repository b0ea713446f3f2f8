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

// TestBumpRemote: a Bump is published, a BumpLocal or a remote one is not; a remote one advances only
// the keys the hub has (and wakes their waiters and the OnBump hook), BumpAll every one.
func TestBumpRemote(t *testing.T) {
	h := New(100)
	var published [][]string
	h.OnPublish(func(keys []string) { published = append(published, append([]string(nil), keys...)) })
	var heard []string
	h.OnBump(func(key string, _ int64) { heard = append(heard, key) })
	h.Bump("a")
	if len(published) != 1 || len(published[0]) != 1 || published[0][0] != "a" {
		t.Fatalf("published %v, want [[a]]", published)
	}
	h.BumpLocal("a", "b")
	if len(published) != 1 {
		t.Fatalf("a local bump was published: %v", published)
	}
	v, ch := h.Version("a")
	h.BumpRemote("a", "unknown")
	select {
	case <-ch:
	default:
		t.Fatal("a remote bump did not wake a's waiter")
	}
	if now, _ := h.Version("a"); now != v+1 {
		t.Fatalf("a at %d after a remote bump, want %d", now, v+1)
	}
	h.mu.Lock()
	_, kept := h.m["unknown"]
	h.mu.Unlock()
	if kept {
		t.Fatal("a remote bump made a key the hub did not have")
	}
	if len(published) != 1 {
		t.Fatalf("a remote bump was published again: %v", published)
	}
	if len(heard) != 4 || heard[3] != "a" {
		t.Fatalf("OnBump heard %v, want [a a b a]", heard)
	}
	_, chb := h.Version("b")
	h.BumpAll()
	select {
	case <-chb:
	default:
		t.Fatal("BumpAll did not wake b's waiter")
	}
	if len(published) != 1 {
		t.Fatalf("BumpAll was published: %v", published)
	}
}
