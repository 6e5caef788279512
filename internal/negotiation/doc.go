// Package negotiation chooses, among the packages a weights provider
// announces for a model, the ranked list of packages that can run on this
// host — the reference's (inference-models 0.36.0) auto-negotiation,
// spec/negotiation.md.
//
// Negotiate is a pure function of the model metadata, a Request (the
// auto-loader's arguments) and a Runtime (the x-ray facts; package xray
// probes them). It runs the reference's filters in order — implementation,
// trust, backend, batch size, quantization, runtime environment, NMS fusion —
// recording for each discarded package the stage, a stable code and the
// reference's reason text, then ranks the survivors with the reference's
// 20 keys. Errors are typed after the reference's exception classes
// (ClassName gives the name; errors.Is(err, ErrNegotiation) matches the
// ModelPackageNegotiationError family).
//
// Where the reference crashes (spec §9: Q2, Q5, Q7, an `nms_fused` feature
// that is not an object) this package returns a typed error or rejects the
// package instead; everything that decides which packages are selected, and
// in which order, follows the reference, quirks included (Q3, Q4, Q12), so
// that a Python process and modelcache sharing a cache pick the same package.
// compat/negotiation-cases.json is the arbiter (golden_test.go).
package negotiation
