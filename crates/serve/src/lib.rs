//! The encrypted inference service: an HTTP API over the FHE executor with key sessions,
//! backpressure and latency histograms. It must never see a secret key or a plaintext request.
