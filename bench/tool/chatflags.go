package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"
)

// chatFlags are the flags that the chat commands (ttfb, streams, resume)
// share.
type chatFlags struct {
	base, tokenFile, provider, resultsFile, prefix *string
}

func addChatFlags(fs *flag.FlagSet, prefix string) chatFlags {
	return chatFlags{
		base:        fs.String("base", "", "gateway base URL"),
		tokenFile:   fs.String("token-file", "", "file with an access token"),
		provider:    fs.String("provider", "", "fake provider base URL (…/v1)"),
		resultsFile: fs.String("results", "", "results file"),
		prefix:      fs.String("prefix", prefix, "key prefix"),
	}
}

// session reads the access token and names the fake provider's root (its
// /release and /stats).
func (f chatFlags) session() (token, providerRoot string, err error) {
	lines, err := readLines(*f.tokenFile)
	if err != nil {
		return "", "", err
	}
	return lines[0], strings.TrimSuffix(*f.provider, "/v1"), nil
}

// tally counts the errors of a measurement and keeps the first.
type tally struct {
	count int
	first error
}

func (t *tally) note(err error) { t.add(1, err) }

// add counts n errors, err standing for them.
func (t *tally) add(n int, err error) {
	t.count += n
	if t.first == nil && n > 0 {
		t.first = err
	}
}

// finish releases the provider, waits up to `wait` for every stream to
// end (counting a failure if they do not), then cancels what is left and
// waits until every request has returned.
func (h *held) finish(providerRoot string, wait time.Duration, cancel context.CancelFunc) {
	h.release(providerRoot)
	if !waitFor(&h.allWG, wait) {
		h.fail(fmt.Errorf("not ended %v after the release", wait))
	}
	cancel()
	h.allWG.Wait()
}
