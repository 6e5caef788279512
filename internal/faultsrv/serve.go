package faultsrv

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.active.Add(-1)
	s.mu.Lock()
	f := s.files[r.URL.Path]
	if f == nil {
		s.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	sig, _, _ := strings.Cut(r.URL.Query().Get("sig"), "-")
	if n, err := strconv.Atoi(sig); err != nil || n < f.validFrom || n > f.sig {
		f.stats.Refused++
		code := f.expireCode
		s.mu.Unlock()
		w.WriteHeader(code)
		return
	}
	req := Request{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), IfRange: r.Header.Get("If-Range"),
		Authorization: r.Header.Get("Authorization") != ""}
	req.First, req.Last, req.Ranged = parseRange(req.Range, int64(len(f.data)))
	if !req.Ranged {
		req.First, req.Last = 0, int64(len(f.data))-1
	}
	rule := s.rule
	var ft Fault
	if r.Method == http.MethodHead {
		f.stats.HEADs++
		s.heads++
		headStatus := f.headStatus
		if rule == nil && len(f.script) > f.gets {
			ft = f.script[f.gets]
		} else if rule == nil {
			ft = f.then
		}
		s.mu.Unlock()
		if rule != nil {
			ft = rule(req)
			if ft.Mode == Status {
				headStatus = ft.Status
			}
		}
		s.head(w, f, ft, headStatus)
		return
	}
	f.stats.GETs++
	s.gets++
	f.gets++
	req.N = f.gets
	if rule == nil {
		ft = f.then
		if f.gets <= len(f.script) {
			ft = f.script[f.gets-1]
		}
	}
	f.requests = append(f.requests, req)
	s.mu.Unlock()
	if rule != nil {
		ft = rule(req)
	}
	s.get(w, r, f, ft)
}

func (s *Server) head(w http.ResponseWriter, f *file, ft Fault, status int) {
	switch {
	case status != 0:
		w.WriteHeader(status)
		return
	case ft.Mode == Endless:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	case ft.Mode == EndlessWithLength:
		w.Header().Set("Content-Length", strconv.FormatInt(length(ft), 10))
		w.Header().Set("Accept-Ranges", "bytes")
		return
	}
	if !ft.NoRanges {
		w.Header().Set("Accept-Ranges", "bytes")
	}
	w.Header().Set("ETag", f.etag)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
}

func length(ft Fault) int64 {
	if ft.Length > 0 {
		return ft.Length
	}
	return 1 << 40
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, f *file, ft Fault) {
	h := w.Header()
	switch ft.Mode {
	case Status:
		if ft.RetryAfter != "" {
			h.Set("Retry-After", ft.RetryAfter)
		}
		w.WriteHeader(ft.Status)
		return
	case RedirectLoop:
		http.Redirect(w, r, r.URL.String(), http.StatusFound)
		return
	case RedirectScheme:
		loc := ft.Location
		if loc == "" {
			loc = "file:///etc/passwd"
		}
		h.Set("Location", loc)
		w.WriteHeader(http.StatusFound)
		return
	case Endless, EndlessWithLength:
		if ft.Mode == EndlessWithLength {
			h.Set("Content-Length", strconv.FormatInt(length(ft), 10))
		}
		w.WriteHeader(http.StatusOK)
		s.send(w, r, f, ft, nil, -1)
		return
	}
	data, status := f.data, http.StatusOK
	first, last, ranged := parseRange(r.Header.Get("Range"), int64(len(f.data)))
	if ir := r.Header.Get("If-Range"); ir != "" && ir != f.etag {
		ranged = false
	}
	if ranged && first >= int64(len(f.data)) {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", len(f.data)))
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	if !ft.NoRanges {
		h.Set("Accept-Ranges", "bytes")
	}
	h.Set("ETag", f.etag)
	if ranged && !ft.IgnoreRange {
		data, status = f.data[first:last+1], http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(f.data)))
	}
	if ft.Mode == WrongBytes && len(data) > 0 {
		data = append([]byte(nil), data...)
		data[len(data)/2] ^= 0xFF
	}
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	limit := int64(len(data))
	switch ft.Mode {
	case ResetMidBody, ShortBody, Stall:
		limit = min(limit, ft.At)
	}
	if !s.send(w, r, f, ft, data, limit) {
		return
	}
	rc := http.NewResponseController(w)
	switch ft.Mode {
	case ResetMidBody:
		_ = rc.Flush()
		if c, ok := r.Context().Value(connKey{}).(*net.TCPConn); ok {
			_ = c.SetLinger(0)
			_ = c.Close()
		}
	case ShortBody:
		_ = rc.Flush()
		panic(http.ErrAbortHandler)
	case Stall:
		_ = rc.Flush()
		select {
		case <-r.Context().Done():
		case <-s.stopped:
		}
	}
}

// send writes data[:limit] (data nil: endless random-looking bytes) in
// throttled chunks; false when the client went away or the server stops.
func (s *Server) send(w http.ResponseWriter, r *http.Request, f *file, ft Fault, data []byte, limit int64) bool {
	rc := http.NewResponseController(w)
	chunk := s.chunk.Load()
	delay := time.Duration(s.delay.Load())
	if ft.Chunk > 0 {
		chunk = ft.Chunk
	}
	if ft.Delay > 0 {
		delay = ft.Delay
	}
	var filler []byte
	if data == nil {
		filler = make([]byte, chunk)
		for i := range filler {
			filler[i] = byte(i*131 + 7)
		}
	}
	for sent := int64(0); limit < 0 || sent < limit; {
		var b []byte
		if data == nil {
			b = filler
		} else {
			b = data[sent:min(sent+chunk, limit)]
		}
		n, err := w.Write(b)
		sent += int64(n)
		s.served.Add(int64(n))
		s.mu.Lock()
		f.stats.BodyBytes += int64(n)
		if ft.Tag != "" {
			s.tagged[ft.Tag] += int64(n)
		}
		s.mu.Unlock()
		if err != nil {
			return false
		}
		if delay > 0 || ft.Mode != OK {
			_ = rc.Flush() // a fault's bytes reach the client before the fault
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return false
			case <-s.stopped:
				return false
			}
		}
		select {
		case <-s.stopped:
			return false
		default:
		}
	}
	return true
}

// parseRange reads "bytes=a-b" / "bytes=a-" (one range; others: not ranged).
func parseRange(v string, size int64) (first, last int64, ok bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, 0, false
	}
	last = size - 1
	if b != "" {
		if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
			return 0, 0, false
		}
		last = min(last, size-1)
	}
	return first, last, true
}
