package download

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/errdefs"
)

// errDialRefused is the dial error of an offline transport.
var errDialRefused = fmt.Errorf("%w: the HTTP transport refuses every connection (OFFLINE_MODE)", errdefs.ErrOffline)

// TransportOptions configure NewTransport.
type TransportOptions struct {
	// Offline makes every dial fail before name resolution (offline.md §6).
	Offline bool
	// ConnectTimeout bounds TCP connect and TLS handshake (CHUNK_DOWNLOAD_CONNECT_TIMEOUT).
	ConnectTimeout time.Duration
	// MaxConnsPerHost caps connections per host; 0 = unlimited.
	MaxConnsPerHost int
	// OnDial, if set, is called before every dial attempt (tests count them).
	OnDial func(network, addr string)
}

// TransportOptionsFrom returns the options the engine uses for cfg.
func TransportOptionsFrom(cfg config.Config) TransportOptions {
	return TransportOptions{Offline: cfg.Offline, ConnectTimeout: cfg.ChunkConnectTimeout}
}

// newTransport returns the HTTP transport for downloads. It is the single
// place that decides whether the process may open connections: with Offline
// set its dialer fails every attempt before DNS, so no code path can reach
// the network however it builds its requests.
//
// HTTP/2 is off on purpose: parallel ranges need parallel TCP connections
// (one congestion window each); HTTP/2 would multiplex them onto one.
// Compression is off: byte ranges and sizes refer to the identity encoding.
func newTransport(o TransportOptions) *http.Transport {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 30 * time.Second
	}
	d := &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if o.OnDial != nil {
			o.OnDial(network, addr)
		}
		if o.Offline {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errDialRefused}
		}
		return d.DialContext(ctx, network, addr)
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dial,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		TLSNextProto:          map[string]func(string, *tls.Conn) http.RoundTripper{},
		ForceAttemptHTTP2:     false,
		DisableCompression:    true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		MaxConnsPerHost:       o.MaxConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Larger socket reads than the 4 KiB default: the body is read in
		// big pieces, and bufio passes large reads through anyway.
		ReadBufferSize: 64 << 10,
	}
}

// NewClient returns an *http.Client over newTransport(o). Redirects are
// followed, at most 10, never back to a URL already visited and never to a
// scheme other than http(s) (each a permanent error); net/http drops
// Authorization and cookies when a redirect leaves the original host.
func NewClient(o TransportOptions) *http.Client {
	return &http.Client{Transport: newTransport(o), CheckRedirect: checkRedirect}
}
