package s3store

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/minio/minio-go/v7"

	"github.com/modelcache/modelcache/blobstore"
)

// RequestError is a failed request to the bucket. It names the operation,
// the object and, where the service answered, its status and code, with a
// hint of what to check. It never carries credentials or signatures.
type RequestError struct {
	Op, Bucket, Key string
	Status          int    // 0: no answer (connect error, stall)
	Code            string // S3 error code, e.g. AccessDenied
	Err             error
}

func (e *RequestError) Error() string {
	what := e.Bucket
	if e.Key != "" {
		what += "/" + e.Key
	}
	msg := fmt.Sprintf("blob tier %s %s: ", e.Op, what)
	if e.Status != 0 {
		msg += fmt.Sprintf("HTTP %d %s", e.Status, e.Code)
		if h := e.hint(); h != "" {
			msg += " (" + h + ")"
		}
		return msg
	}
	return msg + e.Err.Error()
}

func (e *RequestError) hint() string {
	switch {
	case e.Status == http.StatusForbidden || e.Code == "InvalidAccessKeyId" || e.Code == "SignatureDoesNotMatch":
		return "check INFERENCE_MODELS_MODEL_BLOB_CACHE_ACCESS_KEY_ID and _SECRET_ACCESS_KEY, or the AWS credential chain, and the bucket policy"
	case e.Code == "NoSuchBucket":
		return "create the bucket or fix INFERENCE_MODELS_MODEL_BLOB_CACHE_BUCKET"
	case e.Code == "AuthorizationHeaderMalformed" || e.Code == "PermanentRedirect":
		return "set INFERENCE_MODELS_MODEL_BLOB_CACHE_REGION to the bucket's region"
	}
	return ""
}

func (e *RequestError) Unwrap() error { return e.Err }

// TooLargeError: an object, or a blob offered for storing, exceeds
// MaxObjectBytes (INFERENCE_MODELS_MODEL_BLOB_CACHE_MAX_OBJECT_BYTES).
type TooLargeError struct {
	Key       string
	Size, Max int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("blob tier object %s: %d bytes, over the %d-byte limit (INFERENCE_MODELS_MODEL_BLOB_CACHE_MAX_OBJECT_BYTES)", e.Key, e.Size, e.Max)
}

// NoBucketError: the bucket does not exist (or the credentials cannot see it).
type NoBucketError struct{ Bucket string }

func (e *NoBucketError) Error() string {
	return fmt.Sprintf("blob tier bucket %q does not exist: create it or fix INFERENCE_MODELS_MODEL_BLOB_CACHE_BUCKET", e.Bucket)
}

// wrap classifies a client error: a missing object matches
// blobstore.ErrNotFound; everything else is a *RequestError.
func (s *Store) wrap(op, md5 string, err error) error {
	key := ""
	if md5 != "" {
		key = s.Key(md5)
	}
	var se *StallError
	if errors.As(err, &se) {
		return &RequestError{Op: op, Bucket: s.o.Bucket, Key: key, Err: se}
	}
	er := minio.ToErrorResponse(err)
	switch {
	case er.Code == "NoSuchKey" || er.Code == "NotFound" || (er.StatusCode == http.StatusNotFound && er.Code != "NoSuchBucket"):
		return fmt.Errorf("blob tier %s %s/%s: %w", op, s.o.Bucket, key, blobstore.ErrNotFound)
	case er.StatusCode != 0:
		return &RequestError{Op: op, Bucket: s.o.Bucket, Key: key, Status: er.StatusCode, Code: er.Code, Err: err}
	}
	return &RequestError{Op: op, Bucket: s.o.Bucket, Key: key, Err: err}
}
