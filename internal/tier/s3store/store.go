// Package s3store is a blobstore.Store on an S3-compatible bucket, with the
// reference's object layout: blob <md5> is the object <prefix>/<md5> (the
// prefix stripped of slashes; an empty prefix gives the bare md5), whose body
// is the file's bytes. Python and Go processes of a fleet share one bucket.
//
// Put verifies before anything becomes visible: the bytes are hashed as they
// stream and compared with the name (and the size) before the single PUT is
// sent (with Content-MD5, so the server checks the transfer too) or before a
// multipart upload is completed (else it is aborted). Every request runs
// under a stall budget (no progress for that long fails it) rather than a
// whole-transfer deadline, and objects over MaxObjectBytes are refused.
//
// The client is minio-go (see docs/fleet.md for why); credentials are static
// when both halves are given, else the standard AWS chain.
package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/config"
)

// Options configures a Store.
type Options struct {
	// Endpoint is http(s)://host[:port] of an S3-compatible service; empty
	// means AWS S3.
	Endpoint string
	Bucket   string
	// Prefix of the object keys; leading and trailing slashes are stripped.
	Prefix string
	// Region to sign for; empty: AWS_REGION, else AWS_DEFAULT_REGION, else
	// asked of the service (GetBucketLocation, once).
	Region string
	// Addressing is auto, path or virtual (config.Addressing*).
	Addressing string
	// Static credentials, used only when both are set; else the AWS chain.
	AccessKeyID, SecretAccessKey string
	// ConnectTimeout bounds each TCP connect (default 1 s).
	ConnectTimeout time.Duration
	// StallTimeout fails a request that makes no progress for this long
	// (default 2 s). It never bounds a whole transfer.
	StallTimeout time.Duration
	// MaxObjectBytes: larger objects are neither stored nor served (default 20 GiB).
	MaxObjectBytes int64
	// PartSize of multipart uploads (default 16 MiB, at least 5 MiB); blobs
	// no larger than one part go up in one PUT.
	PartSize int64
	// PartConcurrency: parts of one upload in flight at once (default 4).
	PartConcurrency int
	// Dial replaces the network dialer (tests record dials with it).
	Dial DialFunc
	// WrapTransport wraps the HTTP transport (tests count requests with it).
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// OptionsFrom maps the tier's configuration.
func OptionsFrom(b config.BlobCache) Options {
	return Options{
		Endpoint: b.EndpointURL, Bucket: b.Bucket, Prefix: b.Prefix, Region: b.Region,
		Addressing: b.AddressingStyle, AccessKeyID: b.AccessKeyID, SecretAccessKey: b.SecretAccessKey.Reveal(),
		ConnectTimeout: b.ConnectTimeout, StallTimeout: b.ReadTimeout, MaxObjectBytes: b.MaxObjectBytes,
	}
}

const (
	minPartSize     = 5 << 20
	defaultPartSize = 16 << 20
	maxParts        = 10000
)

// Store is the bucket behind blobstore.Store. It is safe for concurrent use.
type Store struct {
	o      Options
	prefix string
	client *minio.Client
	core   minio.Core
	http   *http.Client
	bufs   sync.Pool // part buffers of o.PartSize
}

var _ blobstore.Store = (*Store)(nil)

// New returns a Store. It sends nothing: the first request is the first
// call's.
func New(o Options) (*Store, error) {
	if o.Bucket == "" {
		return nil, errors.New("s3store: no bucket")
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = time.Second
	}
	if o.StallTimeout <= 0 {
		o.StallTimeout = 2 * time.Second
	}
	if o.MaxObjectBytes <= 0 {
		o.MaxObjectBytes = 20 << 30
	}
	if o.PartSize == 0 {
		o.PartSize = defaultPartSize
	}
	if o.PartSize < minPartSize {
		o.PartSize = minPartSize
	}
	if o.PartConcurrency <= 0 {
		o.PartConcurrency = 4
	}
	host, secure := "s3.amazonaws.com", true
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("s3store: endpoint %q: want http(s)://host[:port]", o.Endpoint)
		}
		host, secure = u.Host, u.Scheme == "https"
	}
	lookup := minio.BucketLookupAuto
	switch o.Addressing {
	case config.AddressingPath:
		lookup = minio.BucketLookupPath
	case config.AddressingVirtual:
		lookup = minio.BucketLookupDNS
	case config.AddressingAuto, "":
	default:
		return nil, fmt.Errorf("s3store: addressing style %q: want auto, path or virtual", o.Addressing)
	}
	region := o.Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	base := newTransport(o.Dial, o.ConnectTimeout, o.StallTimeout)
	var rt http.RoundTripper = &stallTransport{base: base, budget: o.StallTimeout}
	if o.WrapTransport != nil {
		rt = o.WrapTransport(rt)
	}
	hc := &http.Client{Transport: rt}
	// Credential fetches (instance metadata, STS) are small: a whole-request
	// bound is right for them, and keeps a silent metadata address from
	// hanging every call.
	creds := credentialsFor(o, &http.Client{Transport: base, Timeout: o.ConnectTimeout + o.StallTimeout + 10*time.Second})
	client, err := minio.New(host, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Transport:    rt,
		Region:       region,
		BucketLookup: lookup,
		// One attempt per call, as the reference configures boto3
		// (total_max_attempts 1): the circuit breaker decides about retries.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	s := &Store{o: o, prefix: strings.Trim(o.Prefix, "/"), client: client, core: minio.Core{Client: client}, http: hc}
	partSize := o.PartSize
	s.bufs.New = func() any { b := make([]byte, partSize); return &b }
	return s, nil
}

// credentialsFor: static when both halves are set, else the standard AWS
// chain: environment, shared credentials/config files, then web identity,
// container and instance roles (the IAM provider covers those).
func credentialsFor(o Options, hc *http.Client) *credentials.Credentials {
	if o.AccessKeyID != "" && o.SecretAccessKey != "" {
		return credentials.NewStaticV4(o.AccessKeyID, o.SecretAccessKey, "")
	}
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
		&credentials.IAM{Client: hc},
	})
}

// Key is the object key of blob md5 (not validated).
func (s *Store) Key(md5 string) string {
	if s.prefix == "" {
		return md5
	}
	return s.prefix + "/" + md5
}

// Bucket names the bucket.
func (s *Store) Bucket() string { return s.o.Bucket }

// Endpoint is the service's base URL as configured ("" for AWS S3).
func (s *Store) Endpoint() string { return s.o.Endpoint }

// MaxObjectBytes is the largest object the store stores or serves.
func (s *Store) MaxObjectBytes() int64 { return s.o.MaxObjectBytes }

// StallTimeout is the stall budget of every request.
func (s *Store) StallTimeout() time.Duration { return s.o.StallTimeout }

// HTTPClient is a client with the store's transport (connect bound, stall
// budget, dialer): the one to fetch presigned URLs with.
func (s *Store) HTTPClient() *http.Client { return s.http }

// Object is what a HEAD tells about a stored blob.
type Object struct {
	blobstore.Info
	ETag         string
	LastModified time.Time
}

// Head returns the object of blob md5, or an error matching
// blobstore.ErrNotFound.
func (s *Store) Head(ctx context.Context, md5 string) (Object, error) {
	if err := blobstore.ValidateMD5(md5); err != nil {
		return Object{}, err
	}
	oi, err := s.client.StatObject(ctx, s.o.Bucket, s.Key(md5), minio.StatObjectOptions{})
	if err != nil {
		return Object{}, s.wrap("HEAD", md5, err)
	}
	return Object{Info: blobstore.Info{MD5: md5, Size: oi.Size}, ETag: oi.ETag, LastModified: oi.LastModified}, nil
}

// Stat implements blobstore.Store.
func (s *Store) Stat(ctx context.Context, md5 string) (blobstore.Info, error) {
	o, err := s.Head(ctx, md5)
	return o.Info, err
}

// Open implements blobstore.Store with a ranged GET from offset, pinned to
// the object's ETag so that a replaced object fails the read instead of
// mixing versions. An object over MaxObjectBytes is a *TooLargeError.
func (s *Store) Open(ctx context.Context, md5 string, offset int64) (io.ReadCloser, blobstore.Info, error) {
	o, err := s.Head(ctx, md5)
	if err != nil {
		return nil, blobstore.Info{}, err
	}
	if o.Size > s.o.MaxObjectBytes {
		return nil, blobstore.Info{}, &TooLargeError{Key: s.Key(md5), Size: o.Size, Max: s.o.MaxObjectBytes}
	}
	if offset < 0 || offset > o.Size {
		return nil, blobstore.Info{}, fmt.Errorf("open blob %s at offset %d of %d bytes: offset outside the blob", md5, offset, o.Size)
	}
	if offset == o.Size {
		return io.NopCloser(strings.NewReader("")), o.Info, nil
	}
	opts := minio.GetObjectOptions{}
	if offset > 0 {
		if err := opts.SetRange(offset, 0); err != nil {
			return nil, blobstore.Info{}, err
		}
	}
	if o.ETag != "" {
		if err := opts.SetMatchETag(o.ETag); err != nil {
			return nil, blobstore.Info{}, err
		}
	}
	body, oi, _, err := s.core.GetObject(ctx, s.o.Bucket, s.Key(md5), opts)
	if err != nil {
		return nil, blobstore.Info{}, s.wrap("GET", md5, err)
	}
	want := o.Size - offset
	if oi.Size >= 0 && oi.Size != want {
		body.Close()
		return nil, blobstore.Info{}, fmt.Errorf("GET %s from %d: %d bytes announced, want %d: the object changed", s.Key(md5), offset, oi.Size, want)
	}
	return &exactReader{rc: body, left: want, key: s.Key(md5)}, o.Info, nil
}

// exactReader passes exactly left bytes and fails on a short or long body.
type exactReader struct {
	rc   io.ReadCloser
	left int64
	key  string
}

func (r *exactReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		var one [1]byte
		if n, _ := r.rc.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("GET %s: body longer than the object", r.key)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.rc.Read(p)
	r.left -= int64(n)
	if err == io.EOF && r.left > 0 {
		err = fmt.Errorf("GET %s: body ended %d bytes short: %w", r.key, r.left, io.ErrUnexpectedEOF)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (r *exactReader) Close() error { return r.rc.Close() }

// Delete implements blobstore.Store.
func (s *Store) Delete(ctx context.Context, md5 string) error {
	if err := blobstore.ValidateMD5(md5); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.o.Bucket, s.Key(md5), minio.RemoveObjectOptions{}); err != nil {
		if errors.Is(s.wrap("DELETE", md5, err), blobstore.ErrNotFound) {
			return nil
		}
		return s.wrap("DELETE", md5, err)
	}
	return nil
}

// Walk implements blobstore.Store: every object directly under the prefix
// whose name is a blob name. Other keys (another application's objects in a
// shared bucket, sub-folders) are skipped.
func (s *Store) Walk(ctx context.Context, fn func(blobstore.Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the lister when fn ends the walk early
	p := ""
	if s.prefix != "" {
		p = s.prefix + "/"
	}
	for oi := range s.client.ListObjects(ctx, s.o.Bucket, minio.ListObjectsOptions{Prefix: p}) {
		if oi.Err != nil {
			return s.wrap("LIST", "", oi.Err)
		}
		name := strings.TrimPrefix(oi.Key, p)
		if blobstore.ValidateMD5(name) != nil {
			continue
		}
		if err := fn(blobstore.Info{MD5: name, Size: oi.Size}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// PresignGet returns a GET URL of blob md5 valid for expiry, signed without
// any request. The engine fetches it with ranges, like an origin URL; it is
// good for GET only (a HEAD on it is refused).
func (s *Store) PresignGet(ctx context.Context, md5 string, expiry time.Duration) (string, error) {
	if err := blobstore.ValidateMD5(md5); err != nil {
		return "", err
	}
	expiry = min(max(expiry, time.Minute), 7*24*time.Hour) // SigV4's bounds
	u, err := s.client.PresignedGetObject(ctx, s.o.Bucket, s.Key(md5), expiry, nil)
	if err != nil {
		return "", s.wrap("presign", md5, err)
	}
	return u.String(), nil
}

// Ping checks that the bucket exists and the credentials may see it.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.o.Bucket)
	if err != nil {
		return s.wrap("HEAD bucket", "", err)
	}
	if !ok {
		return &NoBucketError{Bucket: s.o.Bucket}
	}
	return nil
}
