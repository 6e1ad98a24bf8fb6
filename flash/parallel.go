package flash

import (
	"context"
	"runtime"

	"golang.org/x/sync/errgroup"
)

// The decoders that use several cores (xz blocks, bzip2 blocks, qcow2's
// compressed clusters) share one worker pool, ordered: a producer reads the
// source once, from start to end (it is hashed on the way), and queues a job
// for each independent piece; workers run the jobs as they come; all of them
// under one errgroup, whose context every wait selects on. Each job has a turn
// in the order the jobs were queued. A job whose output offset is where the
// previous job's output ended (a bzip2 block) waits for its turn, which brings
// that offset, delivers, and passes its own end on. A job whose offset is known
// (an xz block, a qcow2 cluster) delivers as soon as it is decoded, without
// waiting: the sink is safe for concurrent use.

// multiCore reports whether decoding on several cores is worth it.
func multiCore() bool { return runtime.GOMAXPROCS(0) >= 2 }

// turn is a job's place in the order of the queued jobs.
type turn struct {
	ctx  context.Context
	prev <-chan int64
	next chan<- int64
}

// wait returns, once the previous job has passed its turn on, the offset
// where that job's output ended (0 for the first job).
func (t turn) wait() (int64, error) {
	select {
	case end := <-t.prev:
		return end, nil
	case <-t.ctx.Done():
		return 0, t.ctx.Err()
	}
}

// pass gives the next job its turn, with the offset where this job's output
// ended. Jobs that wait for their turn must all pass it on.
func (t turn) pass(end int64) { t.next <- end }

// ordered runs produce and n workers under one errgroup and returns the first
// error, once every goroutine has stopped. produce reads the source and queues
// jobs with send, in the order of the source; send blocks while n jobs wait.
// newWorker makes each worker's run, which is given the jobs one at a time
// with their turn, and release, which frees what the worker holds when it
// stops (nil: nothing).
func ordered[J any](ctx context.Context, n int, produce func(ctx context.Context, send func(J) error) error, newWorker func() (run func(J, turn) error, release func())) error {
	type queued struct {
		job  J
		turn turn
	}
	g, ctx := errgroup.WithContext(ctx)
	jobs := make(chan queued, n)
	g.Go(func() error {
		defer close(jobs)
		prev := make(chan int64, 1)
		prev <- 0
		return produce(ctx, func(j J) error {
			next := make(chan int64, 1)
			select {
			case jobs <- queued{j, turn{ctx, prev, next}}:
				prev = next
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
	for range n {
		run, release := newWorker()
		g.Go(func() error {
			if release != nil {
				defer release()
			}
			for {
				select {
				case q, ok := <-jobs:
					if !ok {
						return nil
					}
					if err := run(q.job, q.turn); err != nil {
						return err
					}
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		})
	}
	return g.Wait()
}
