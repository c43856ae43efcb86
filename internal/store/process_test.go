package store_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nixrepo/nixrepo/internal/store"
)

// The helper process: NIXREPO_STORE_HELPER=<mode> runs one writer of a
// cross-process test and prints what it did.
func TestMain(m *testing.M) {
	if mode := os.Getenv("NIXREPO_STORE_HELPER"); mode != "" {
		os.Exit(helperProcess(mode))
	}
	os.Exit(m.Run())
}

func helperProcess(mode string) int {
	ctx := context.Background()
	dir, id, start := os.Getenv("HELPER_DIR"), os.Getenv("HELPER_ID"), os.Getenv("HELPER_START")
	s, err := store.Open(ctx, "file://"+dir, "", false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	for { // start together
		if _, err := os.Stat(start); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	switch mode {
	case "create":
		for k := range 300 {
			key := fmt.Sprintf("r/%032d.narinfo", k)
			err := s.Put(ctx, key, []byte("writer "+id), &store.WriteOptions{IfNotExist: true})
			switch {
			case err == nil:
				fmt.Fprintln(out, key)
			case !errors.Is(err, store.ErrExists):
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	case "update":
		for range 40 {
			err := s.Update(ctx, "r/counter", nil, func(old []byte) ([]byte, error) {
				n := 0
				fmt.Sscan(string(old), &n)
				return []byte(fmt.Sprint(n + 1)), nil
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
	}
	return 0
}

// runWriters starts n writer processes of mode on dir and returns their
// outputs.
func runWriters(t *testing.T, mode, dir string, n int) []string {
	t.Helper()
	start := dir + ".start"
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	for i := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "NIXREPO_STORE_HELPER="+mode, "HELPER_DIR="+dir, fmt.Sprintf("HELPER_ID=%d", i), "HELPER_START="+start)
		outs[i] = &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = outs[i], os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[i] = cmd
	}
	time.Sleep(300 * time.Millisecond)
	if err := os.WriteFile(start, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res := make([]string, n)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
		res[i] = outs[i].String()
	}
	return res
}

// TestFolderWriteOnceAcrossProcesses: four processes create the same 300
// keys at once; each key must have exactly one creator, and hold its bytes.
func TestFolderWriteOnceAcrossProcesses(t *testing.T) {
	dir := t.TempDir() + "/store"
	outs := runWriters(t, "create", dir, 4)
	winner := map[string]int{}
	for i, out := range outs {
		for _, key := range strings.Fields(out) {
			if w, dup := winner[key]; dup {
				t.Errorf("%s: writers %d and %d both created it", key, w, i)
			}
			winner[key] = i
		}
	}
	s, err := store.Open(context.Background(), "file://"+dir, "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for k := range 300 {
		key := fmt.Sprintf("r/%032d.narinfo", k)
		w, ok := winner[key]
		if !ok {
			t.Errorf("%s: no writer created it", key)
			continue
		}
		if got, _ := s.Get(context.Background(), key); string(got) != fmt.Sprintf("writer %d", w) {
			t.Errorf("%s holds %q, not its creator's (writer %d) bytes", key, got, w)
		}
	}
}

// TestFolderUpdateAcrossProcesses: four processes increment one counter
// 40 times each by compare-and-swap; no increment may be lost.
func TestFolderUpdateAcrossProcesses(t *testing.T) {
	dir := t.TempDir() + "/store"
	runWriters(t, "update", dir, 4)
	got, err := os.ReadFile(dir + "/r/counter")
	if err != nil || string(got) != "160" {
		t.Fatalf("counter = %q (%v), want 160", got, err)
	}
}
