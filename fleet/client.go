package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Client speaks the plan protocol for one machine.
type Client struct {
	Config
	// HTTP does the requests; nil means a client with a 10 s timeout per request.
	HTTP *http.Client
	// Attempts is how many times plan and inventory requests are tried; zero
	// means 3. Backoff is the first wait between tries (doubling); zero means 1 s.
	Attempts int
	Backoff  time.Duration
	// StatusDeadline bounds how long a status post is retried until the server
	// acknowledges it; zero means 2 minutes.
	StatusDeadline time.Duration
}

func (c *Client) client() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 10 * time.Second}
}

func (c *Client) url(route string) string { return c.Server + "/pxe/" + c.MAC + "/" + route }

// statusError is an HTTP answer that is not a success.
type statusError struct {
	method, url string
	code        int
	status      string
}

func (e *statusError) Error() string { return fmt.Sprintf("%s %s: %s", e.method, e.url, e.status) }

// do sends one request and returns the body of a 2xx answer.
func (c *Client) do(ctx context.Context, method, url string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, &statusError{method, url, resp.StatusCode, resp.Status}
	}
	return b, nil
}

// retry runs f up to attempts times with doubling backoff; a 4xx answer is not
// retried.
func (c *Client) retry(ctx context.Context, attempts int, f func() error) error {
	wait := c.Backoff
	if wait <= 0 {
		wait = time.Second
	}
	var err error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			wait *= 2
		}
		if err = f(); err == nil {
			return nil
		}
		var se *statusError
		if errors.As(err, &se) && se.code/100 == 4 {
			return err
		}
	}
	return err
}

func (c *Client) attempts() int {
	if c.Attempts > 0 {
		return c.Attempts
	}
	return 3
}

// Plan fetches and checks this machine's plan.
func (c *Client) Plan(ctx context.Context) (Plan, error) {
	var b []byte
	err := c.retry(ctx, c.attempts(), func() (err error) {
		b, err = c.do(ctx, http.MethodGet, c.url("plan"), nil)
		return err
	})
	if err != nil {
		return Plan{}, fmt.Errorf("get plan: %w", err)
	}
	return ParsePlan(b)
}

// Inventory is the body of POST /pxe/<mac>/inventory; Disks holds the disks
// package's InventoryDisk values.
type Inventory struct {
	Disks any             `json:"disks"`
	LSHW  json.RawMessage `json:"lshw,omitempty"`
}

// PostInventory reports the disks (and lshw's tree). A 404 (a MAC the server
// does not know) is harmless and not an error.
func (c *Client) PostInventory(ctx context.Context, inv Inventory) error {
	body, err := json.Marshal(inv)
	if err != nil {
		return err
	}
	err = c.retry(ctx, c.attempts(), func() error {
		_, err := c.do(ctx, http.MethodPost, c.url("inventory"), body)
		return err
	})
	var se *statusError
	if errors.As(err, &se) && se.code == http.StatusNotFound {
		return nil
	}
	return err
}

// Status is the body of POST /pxe/<mac>/status.
type Status struct {
	Status string `json:"status"` // "done" or "failed"
	Reason string `json:"reason,omitempty"`
}

// Failed builds a failed status with the reason cut to 500 characters.
func Failed(reason string) Status {
	if r := []rune(reason); len(r) > 500 {
		reason = string(r[:500])
	}
	return Status{Status: "failed", Reason: reason}
}

// PostStatus reports the outcome, retrying until the server acknowledges it or
// the deadline passes. An older server that answers 404 gets POST
// /pxe/<mac>/done instead, for a success.
func (c *Client) PostStatus(ctx context.Context, s Status) error {
	deadline := c.StatusDeadline
	if deadline <= 0 {
		deadline = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	body, _ := json.Marshal(s)
	wait := c.Backoff
	if wait <= 0 {
		wait = time.Second
	}
	for {
		_, err := c.do(ctx, http.MethodPost, c.url("status"), body)
		var se *statusError
		if errors.As(err, &se) && se.code == http.StatusNotFound && s.Status == "done" {
			_, err = c.do(ctx, http.MethodPost, c.url("done"), nil)
		}
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("post status %s: not acknowledged before the deadline: %w", s.Status, err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
}
