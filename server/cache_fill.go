package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"bty/catalog"
	"bty/category"
)

// A fill: the image read from its origin once, resumed after a cut, hashed
// as written and checked before it counts (the overview is in cache.go).

// permanentErr reports whether retrying a source error cannot help.
func permanentErr(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// fill reads the item's image from its origin and records the outcome.
func (c *Cache) fill(it *cacheItem, origin originFunc) {
	defer c.fills.Done()
	start := time.Now()
	o, f, err := c.fetch(it, origin)
	c.mu.Lock()
	if err != nil {
		it.err = err
		c.used -= it.reserved
		it.reserved = 0
		if c.items[it.key] == it {
			delete(c.items, it.key)
		}
		if !errors.Is(err, errCacheFull) {
			// The origin's failure: its retries get it for a while. A
			// full cache may have room as soon as a download ends.
			c.failed[it.key] = cacheFailure{err: err, at: time.Now()}
		}
		path := it.path
		it.progress()
		c.mu.Unlock()
		if path != "" {
			os.Remove(path)
		}
		c.logf("cache: %s: %v", firstOf(o.name, it.key), err)
		c.event("cache.fill_failed", firstOf(o.ref, it.meta.SHA256), fmt.Sprintf("%s: the cache refused the origin's bytes: %v", firstOf(o.name, it.key), err),
			map[string]any{"src": o.url, "error": err.Error(), "bytes": it.written})
		return
	}
	sum := it.meta.SHA256
	final := filepath.Join(c.dir, sum)
	c.used += it.written - it.reserved
	it.reserved = it.written
	if it.tag != "" {
		delete(c.items, it.key)
		c.pins[o.ref] = cachePin{SHA256: sum, Validator: validatorOf(o.src), Src: o.url, Tag: it.tag}
		if have := c.items[sum]; have != nil {
			// The same bytes as an image cached already (another row,
			// or a fill under its digest): keep that one.
			have.aliases = append(have.aliases, it.tag)
			c.used -= it.reserved
			it.reserved = 0
			it.path, it.done = have.path, true
			it.progress()
			pins := c.pinsJSON()
			c.mu.Unlock()
			os.Remove(f.Name())
			f.Close()
			writeFile(filepath.Join(c.dir, "pins.json"), pins)
			return
		}
		it.key = sum
		it.aliases = append(it.aliases, it.tag)
		c.items[sum] = it
	}
	// Renamed before the readers get the last byte, so that a read that
	// starts now opens the final name; made durable after, so that the
	// waiting machines do not wait for the disk.
	renameErr := os.Rename(f.Name(), final)
	if renameErr == nil {
		it.path = final
	}
	it.done = true
	it.progress()
	pins := c.pinsJSON()
	c.mu.Unlock()
	if renameErr == nil {
		renameErr = f.Sync()
	}
	f.Close()
	if renameErr == nil {
		b, _ := json.Marshal(it.meta)
		renameErr = writeFile(final+".json", b)
	}
	if it.tag != "" {
		writeFile(filepath.Join(c.dir, "pins.json"), pins)
	}
	if renameErr != nil {
		c.logf("cache: %s: %v (it is served until the server stops, then fetched again)", o.name, renameErr)
	}
	d := time.Since(start)
	c.logf("cache: %s (sha256 %s, %d bytes) filled from %s in %s", o.name, sum[:12], it.written, o.url, d.Round(time.Millisecond))
	c.event("cache.filled", firstOf(o.ref, sum), fmt.Sprintf("%s cached: %.1f MiB in %s", o.name, float64(it.written)/(1<<20), d.Round(time.Second)),
		map[string]any{"sha256": sum, "src": o.url, "bytes": it.written, "seconds": d.Seconds()})
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// validatorOf returns an http(s) source's validator, "" for others.
func validatorOf(src catalog.Source) string {
	if h, ok := src.(*catalog.HTTPSource); ok {
		return h.Validator()
	}
	return ""
}

// fetch copies the origin into a new file of the cache, resuming after
// cuts, and checks its size and digest. On success the file is returned
// open, not yet synced.
func (c *Cache) fetch(it *cacheItem, origin originFunc) (cacheOrigin, *os.File, error) {
	ctx := c.ctx
	o, err := origin(ctx)
	if err != nil {
		return o, nil, err
	}
	f, err := os.CreateTemp(c.dir, ".fill-*")
	if err != nil {
		return o, nil, fmt.Errorf("the cache cannot store it: %w", err)
	}
	c.mu.Lock()
	it.path = f.Name()
	it.meta.Name, it.meta.Ref, it.meta.Src = o.name, o.ref, o.url
	c.mu.Unlock()
	fail := func(err error) (cacheOrigin, *os.File, error) {
		f.Close()
		return o, nil, err
	}
	if o.size > 0 {
		// Room before the origin is asked, when the catalog or the
		// registry says the size.
		if err := c.reserve(it, o.size); err != nil {
			return fail(err)
		}
	}
	h := sha256.New()
	var off int64
	size := int64(-1)
	buf := make([]byte, 1<<20)
	wait, fails := 250*time.Millisecond, 0
	for {
		rc, n, err := o.src.Open(ctx, off)
		if err == nil {
			switch {
			case size < 0 && n >= 0:
				size = n
				if o.size > 0 && n != o.size {
					rc.Close()
					return fail(fmt.Errorf("the origin has %d bytes, the catalog says %d: %w", n, o.size, category.ErrIntegrity))
				}
				if err := c.reserve(it, n-it.reserved); err != nil {
					rc.Close()
					return fail(err)
				}
				c.mu.Lock()
				it.size = n
				it.progress()
				c.mu.Unlock()
			case n >= 0 && n != size:
				rc.Close()
				return fail(fmt.Errorf("the origin's size changed from %d to %d bytes: %w", size, n, catalog.ErrChanged))
			}
			var got int64
			got, err = c.copy(it, f, h, rc, buf, &off, size)
			rc.Close()
			if got > 0 {
				wait, fails = 250*time.Millisecond, 0
			}
			if err == nil {
				if size < 0 || off >= size {
					break
				}
				err = fmt.Errorf("the origin ended at byte %d of %d", off, size)
			}
		}
		if ctx.Err() != nil {
			return fail(fmt.Errorf("the server is stopping: %w", ctx.Err()))
		}
		if errors.Is(err, errCacheFull) || errors.Is(err, category.ErrIntegrity) {
			return fail(err)
		}
		if fails++; fails >= cacheAttempts || permanentErr(err) {
			return fail(err)
		}
		c.logf("cache: %s: %v; resuming at byte %d", o.name, err, off)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(wait*2, 8*time.Second)
	}
	if o.size > 0 && off != o.size {
		return fail(fmt.Errorf("the origin delivered %d bytes, the catalog says %d: %w", off, o.size, category.ErrIntegrity))
	}
	sum := hex.EncodeToString(h.Sum(nil))
	want := firstOf(o.sha256, it.meta.SHA256)
	if want != "" && sum != want {
		return fail(fmt.Errorf("the origin's bytes have sha256 %s, not %s: %w: nothing was cached", sum, want, category.ErrIntegrity))
	}
	c.mu.Lock()
	it.meta.SHA256, it.meta.Size, it.meta.FilledAt, it.size = sum, off, time.Now().UTC(), off
	c.mu.Unlock()
	return o, f, nil
}

// copy appends the origin's bytes to f from *off on, publishing each write.
func (c *Cache) copy(it *cacheItem, f *os.File, h hash.Hash, r io.Reader, buf []byte, off *int64, size int64) (int64, error) {
	var got int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if size >= 0 && *off+int64(n) > size {
				return got, fmt.Errorf("the origin sent more than its %d bytes: %w", size, category.ErrIntegrity)
			}
			if size < 0 && *off+int64(n) > it.reserved {
				if err := c.reserve(it, cacheStep); err != nil {
					return got, err
				}
			}
			if _, werr := f.Write(buf[:n]); werr != nil {
				return got, fmt.Errorf("the cache cannot store it: %w", werr)
			}
			h.Write(buf[:n])
			c.origin.Add(int64(n))
			*off += int64(n)
			got += int64(n)
			c.mu.Lock()
			it.written = *off
			if *off-it.woke >= cacheWake {
				it.woke = *off
				it.progress()
			}
			c.mu.Unlock()
		}
		if err == io.EOF {
			return got, nil
		}
		if err != nil {
			return got, err
		}
	}
}

// reserve takes n bytes of room for it, evicting the least recently used
// complete images nobody needs.
func (c *Cache) reserve(it *cacheItem, n int64) error {
	var needed map[string]bool
	if c.max > 0 {
		var err error
		if needed, err = c.needed(c.ctx); err != nil {
			return fmt.Errorf("the cache cannot tell which images planned flashes need: %w", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max > 0 && n > c.max {
		return fmt.Errorf("%w: the image has %d bytes, more than --cache-max %d", errCacheFull, n, c.max)
	}
	var evicted []*cacheItem
	for c.max > 0 && c.used+n > c.max {
		var victim *cacheItem
		for _, x := range c.items {
			if x.done && x.readers == 0 && !needed[x.meta.SHA256] && (victim == nil || x.lastUsed.Before(victim.lastUsed)) {
				victim = x
			}
		}
		if victim == nil {
			for _, v := range evicted {
				c.logf("cache: evicted %s (%s)", v.meta.Name, v.meta.SHA256[:12])
			}
			return fmt.Errorf("%w: %d of --cache-max %d bytes are taken by images being read or filled, %d more are needed: raise --cache-max", errCacheFull, c.used, c.max, n)
		}
		c.remove(victim)
		evicted = append(evicted, victim)
	}
	it.reserved += n
	c.used += n
	for _, v := range evicted {
		go c.event("cache.evicted", firstOf(v.meta.Ref, v.meta.SHA256), fmt.Sprintf("%s evicted (least recently used) to make room under --cache-max", v.meta.Name),
			map[string]any{"sha256": v.meta.SHA256, "bytes": v.size})
	}
	return nil
}
