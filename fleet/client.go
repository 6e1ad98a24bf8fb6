package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"bty/wire"
)

// Client speaks the plan protocol for one machine. After Plan it remembers
// the plan's id and agent token, and sends them with the posts that follow.
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

	mu     sync.Mutex
	planID int64  // the plan's id; 0 for a server that gives none
	token  string // the plan's agent token, "" when none
}

func (c *Client) client() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 10 * time.Second}
}

func (c *Client) url(route string) string { return c.Server + "/pxe/" + c.MAC + "/" + route }

func (c *Client) cycle() (planID int64, token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.planID, c.token
}

// statusError is an HTTP answer that is not a success.
type statusError struct {
	method, url string
	code        int
	status      string
	detail      string
}

func (e *statusError) Error() string {
	if e.detail != "" {
		return fmt.Sprintf("%s %s: %s: %s", e.method, e.url, e.status, e.detail)
	}
	return fmt.Sprintf("%s %s: %s", e.method, e.url, e.status)
}

// do sends one request, with the agent token when there is one, and returns
// the body of a 2xx answer.
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
	if _, token := c.cycle(); token != "" && method == http.MethodPost {
		req.Header.Set("Authorization", "Bearer "+token)
	}
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
		var e wire.Error
		json.Unmarshal(b, &e)
		return nil, &statusError{method, url, resp.StatusCode, resp.Status, e.Detail}
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

// Plan fetches and checks this machine's plan, and keeps its id and token.
func (c *Client) Plan(ctx context.Context) (wire.Plan, error) {
	var b []byte
	err := c.retry(ctx, c.attempts(), func() (err error) {
		b, err = c.do(ctx, http.MethodGet, c.url("plan"), nil)
		return err
	})
	if err != nil {
		return wire.Plan{}, fmt.Errorf("get plan: %w", err)
	}
	p, err := wire.ParsePlan(b)
	if err != nil {
		return p, err
	}
	c.mu.Lock()
	c.planID, c.token = p.PlanID, p.AgentToken
	c.mu.Unlock()
	return p, nil
}

// PostInventory reports the disks (and lshw's tree). A 404 (a MAC the server
// does not know) is harmless and not an error.
func (c *Client) PostInventory(ctx context.Context, inv wire.Inventory) error {
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

// PostProgress tells a server that gave a plan id where the flash is. It is
// tried once, briefly: progress is for people watching, and a flash never
// waits for it.
func (c *Client) PostProgress(ctx context.Context, p wire.Progress) error {
	id, _ := c.cycle()
	if id == 0 {
		return nil
	}
	p.PlanID = id
	body, _ := json.Marshal(p)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := c.do(ctx, http.MethodPost, c.url("progress"), body)
	return err
}

// PostStatus reports the outcome, retrying until the server acknowledges it or
// the deadline passes. The plan id and the other additions go only to a
// server whose plan had an id (an older one refuses unknown fields); an older
// server that answers 404 gets POST /pxe/<mac>/done instead, for a success.
// A 4xx answer other than 404 is final: the server refuses this status.
func (c *Client) PostStatus(ctx context.Context, s wire.Status) error {
	deadline := c.StatusDeadline
	if deadline <= 0 {
		deadline = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	if id, _ := c.cycle(); id != 0 {
		s.PlanID = id
	} else {
		s = wire.Status{Status: s.Status, Reason: s.Reason}
	}
	body, _ := json.Marshal(s)
	wait := c.Backoff
	if wait <= 0 {
		wait = time.Second
	}
	for {
		_, err := c.do(ctx, http.MethodPost, c.url("status"), body)
		var se *statusError
		if errors.As(err, &se) && se.code == http.StatusNotFound && s.Status == wire.StatusDone {
			_, err = c.do(ctx, http.MethodPost, c.url("done"), nil)
		}
		if err == nil {
			return nil
		}
		if errors.As(err, &se) && se.code/100 == 4 && (se.code != http.StatusNotFound || s.Status == wire.StatusDone) {
			return fmt.Errorf("post status %s: refused: %w", s.Status, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("post status %s: not acknowledged before the deadline: %w", s.Status, err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
}
